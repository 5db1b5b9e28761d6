"""Constants shared by the compiled core, its pure twin and the rest of the package.

Defined once here; ``_core/_core.pyx`` imports this module rather than repeating a table.
"""

# Node's token: 55 letters from this alphabet (61 letters, no "Z"), "Z", then the creation time
# in milliseconds in base 36.
TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYabcdefghijklmnopqrstuvwxyz0123456789"
TOKEN_RANDOM_LENGTH = 55
TOKEN_SEPARATOR = "Z"
TOKEN_LENGTH = 64
# An anonymous session's token (ours alone) has this letter where Node's has its "Z", so a hot
# load reads only the key its token names (operations.py); any token may name either kind.
ANONYMOUS_SEPARATOR = "A"
BASE36_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"

# Node's defaults and lower bounds.
DEFAULT_TTL = 7200
MIN_TTL = 10
MAX_ID_LENGTH = 128
MAX_IP_LENGTH = 39
DEFAULT_NAMESPACE = "rs"
DEFAULT_WIPE = 600
DEFAULT_CACHE_MAX = 5000

# durability="replicated": the replicas to wait for and how long (WAIT), unless given.
DEFAULT_REPLICAS = 1
DEFAULT_WAIT_MS = 1000

# Our limits for one session's data: more keys or bytes are refused with SessionTooLarge.
MAX_DATA_KEYS = 1000
MAX_DATA_BYTES = 64 * 1024

# How long a token replaced by upgrade/regenerate stays marked as rotated: a request still in
# flight with it then keeps the browser's (new) cookie instead of expiring it.
ROTATION_GRACE = 60

# The activity resolution (seconds): a session used again within that long (and within a tenth
# of its ttl) is read with plain commands and records no activity (docs/manager.md); 0 = Node's
# rules, every load recording it. The most it may be: one hour.
DEFAULT_ACTIVITY_RESOLUTION = 10
MAX_ACTIVITY_RESOLUTION = 3600

# Upper bounds of the numeric arguments, checked before anything is written: a larger ttl would
# make EXPIRE fail halfway through a script. 10 years of seconds; a look-back window (deltaTime)
# longer than the longest ttl finds nothing more.
MAX_TTL = 10 * 365 * 24 * 3600  # 315360000
MAX_SESSIONS = 100_000  # create(max_sessions=...): sessions kept per user id

# Deepest nesting of lists and objects in one session value: a value holding more levels (or a
# container that holds itself) is refused with ValidationError. A scalar is 0 levels, [] is 1.
MAX_DEPTH = 32

# Devices ("your devices"): the User-Agent a session records at sign-in is cut to this many
# characters; a device's handle is this many random bytes, written as lowercase hex (a session
# signed in without one gets a digest of its token of the same length: scripts/_lib.lua).
MAX_USER_AGENT = 512
DEVICE_HANDLE_BYTES = 12
