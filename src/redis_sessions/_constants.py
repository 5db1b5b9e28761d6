"""Constants shared by the compiled core, its pure twin and the rest of the package.

Defined once here; ``_core/_core.pyx`` imports this module rather than repeating a table.
"""

# Node's token: 55 letters from this alphabet (61 letters, no "Z"), "Z", then the creation time
# in milliseconds in base 36.
TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYabcdefghijklmnopqrstuvwxyz0123456789"
TOKEN_RANDOM_LENGTH = 55
TOKEN_SEPARATOR = "Z"
TOKEN_LENGTH = 64
BASE36_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"

# Node's defaults and lower bounds.
DEFAULT_TTL = 7200
MIN_TTL = 10
MAX_ID_LENGTH = 128
MAX_IP_LENGTH = 39
DEFAULT_NAMESPACE = "rs"
DEFAULT_WIPE = 600
DEFAULT_CACHE_MAX = 5000

# Our limits for one session's data: more keys or bytes are refused with SessionTooLarge.
MAX_DATA_KEYS = 1000
MAX_DATA_BYTES = 64 * 1024
