// Drives the real Node redis-sessions v4 for tests/manager/test_node_interop.py.
//
// Reads one JSON command per line on stdin and writes one JSON reply per line on stdout, in order:
//   {"seq": 1, "inst": "main", "op": "open", "args": {"namespace": "ns", "wipe": 0, "options": {"url": "redis://..."}}}
//   {"seq": 2, "inst": "main", "op": "create", "args": {"app": "app1", "id": "u1", "ip": "1.2.3.4"}}
// -> {"seq": 2, "ok": true, "result": {"token": "..."}}  or  {"seq": 2, "ok": false, "error": {"name": "...", "message": "..."}}
// "open" makes a RedisSessions instance under the name "inst" (constructor options passed as they are),
// "close" quits it; every other op calls the method of that name with "args" and returns its result.
// Extra ops: "version" (the installed package's version), "token" (a token from Node's own generator),
// "now" (Node's clock in unix seconds), "sign"/"unsign" (express's cookie-signature). The module is found through RS_NODE_DIR (its node_modules).
"use strict";

const path = require("path");
const readline = require("readline");

const base = process.env.RS_NODE_DIR || __dirname;
const modulePath = require.resolve("redis-sessions", { paths: [base] });
const mod = require(modulePath);
const RedisSessions = mod.default || mod;
const pkgVersion = require(path.join(path.dirname(require.resolve("redis-sessions/package.json", { paths: [base] })), "package.json")).version;

const cookieSignature = require(require.resolve("cookie-signature", { paths: [base] }));

const instances = new Map();
const METHODS = new Set(["create", "get", "set", "kill", "killsoid", "killall", "soid", "soapp", "activity", "ping"]);

function write(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

async function closeInstance(name) {
  const rs = instances.get(name);
  if (!rs) return false;
  instances.delete(name);
  await rs.quit();
  if (rs.redissub) {
    try { await rs.redissub.quit(); } catch (e) { /* already closed */ }
  }
  return true;
}

async function handle(cmd) {
  const name = cmd.inst || "main";
  const args = cmd.args || {};
  switch (cmd.op) {
    case "version":
      return { version: pkgVersion, node: process.version };
    case "open": {
      if (instances.has(name)) await closeInstance(name);
      const rs = new RedisSessions(args);
      rs.redis.on("error", (e) => process.stderr.write(`redis error (${name}): ${e}\n`));
      if (rs.redissub) rs.redissub.on("error", (e) => process.stderr.write(`redissub error (${name}): ${e}\n`));
      instances.set(name, rs);
      rs.connected = await rs.toConnect;
      // with cachetime > 0, be subscribed to {ns}:cache before any test step runs
      rs.subscribed = await rs.toSubscribe;
      return { version: pkgVersion, cache: rs.isCache, wiper: rs.wiperInterval !== null };
    }
    case "close":
      return await closeInstance(name);
    case "sign":
      return cookieSignature.sign(args.value, args.secret);
    case "unsign":
      return cookieSignature.unsign(args.value, args.secret);
    case "now":
      return Number.parseInt("" + Date.now() / 1000, 10);
    case "token": {
      const rs = instances.get(name);
      if (!rs) throw new Error(`no instance ${name}; send "open" first`);
      return rs._createToken();
    }
    default: {
      if (!METHODS.has(cmd.op)) throw new Error(`unknown op ${cmd.op}`);
      const rs = instances.get(name);
      if (!rs) throw new Error(`no instance ${name}; send "open" first`);
      const result = await rs[cmd.op](args);
      return result === undefined ? null : result;
    }
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
let chain = Promise.resolve();
rl.on("line", (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    let cmd = {};
    try {
      cmd = JSON.parse(line);
      const result = await handle(cmd);
      write({ seq: cmd.seq, ok: true, result });
    } catch (e) {
      write({ seq: cmd.seq, ok: false, error: { name: (e && e.name) || "Error", message: (e && e.message) || String(e) } });
    }
  });
});
rl.on("close", () => {
  chain = chain.then(async () => {
    for (const name of [...instances.keys()]) {
      try { await closeInstance(name); } catch (e) { /* ignore */ }
    }
    process.exit(0);
  });
});
