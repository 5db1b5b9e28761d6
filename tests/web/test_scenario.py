"""connect-redis-sessions' own mocha suite (_src/test/test.coffee), ported: several users and
browsers on two apps, through a bare WSGI app, Flask and Django (the ``browsers`` fixture)."""

from __future__ import annotations

import json
import secrets
import string


def rand_lower(n: int) -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))


def rand_alnum(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def sessions_of(body: str, user: str) -> list[dict]:
    head, data = body.split("\n")
    assert head == f"USER: {user}"
    return json.loads(data)["sessions"]


def test_the_connect_redis_sessions_scenario(browsers):
    apps = {"A": rand_lower(10), "B": rand_lower(10)}
    uids = {k: rand_alnum(5) for k in "ABCD"}
    jar = {k: browsers.new() for k in ("A", "B", "C", "D", "D2", "D3", "X")}
    A = f"/{apps['A']}/"

    # first checks
    assert jar["A"].get("/") == "UNKOWN"  # no app name: no session handling
    assert jar["X"].get("/testA/") == "UNKOWN"
    assert jar["A"].get(A, noop=1) == "EMPTY"

    # user A logs in, is known, logs out
    assert jar["A"].get(A, upgrade=uids["A"]) == f"LOGGED IN - USER: {uids['A']}"
    assert jar["A"].get(A) == f"USER: {uids['A']}"
    assert jar["A"].get(A, destroy=1) == "killed + 1"
    assert jar["A"].get(A) == "UNKOWN"

    # users B and C log in; B is unknown in the other app
    assert jar["B"].get(A, upgrade=uids["B"]) == f"LOGGED IN - USER: {uids['B']}"
    assert jar["C"].get(A, upgrade=uids["C"]) == f"LOGGED IN - USER: {uids['C']}"
    assert jar["B"].get(A) == f"USER: {uids['B']}"
    assert jar["B"].get(f"/{apps['B']}/") == "UNKOWN"

    # activity counts unique users; soapp lists the app's sessions; soid the user's
    assert jar["B"].get(A, activity=1) == f"USER: {uids['B']}\n" + json.dumps({"activity": 2})
    for who in ("B", "C"):
        found = sessions_of(jar[who].get(A, soapp=1), uids[who])
        assert len(found) == 2 and {s["id"] for s in found} == {uids["B"], uids["C"]}
    found = sessions_of(jar["B"].get(A, soid=1), uids["B"])
    assert [s["id"] for s in found] == [uids["B"]]
    assert set(found[0]) >= {"id", "r", "w", "ttl", "idle", "ip", "token"}

    # user D joins; B leaves
    assert jar["D"].get(A, upgrade=uids["D"]) == f"LOGGED IN - USER: {uids['D']}"
    found = sessions_of(jar["B"].get(A, soapp=1), uids["B"])
    assert {s["id"] for s in found} == {uids["B"], uids["C"], uids["D"]} and len(found) == 3
    assert jar["B"].get(A, destroy=1) == "killed + 1"
    found = sessions_of(jar["C"].get(A, soapp=1), uids["C"])
    assert len(found) == 2 and {s["id"] for s in found} == {uids["C"], uids["D"]}

    # data of user C: set, overwrite one, clear one
    def saved(body: str) -> dict:
        head, data = body.split("\n")
        assert head == f"USER: {uids['C']}" and data.startswith("SAVED: ")
        return json.loads(data[7:])

    assert saved(jar["C"].get(A, save=1, xyz=42, abc=23)) == {"xyz": "42", "abc": "23"}
    assert saved(jar["C"].get(A, save=1, xyz=666)) == {"xyz": "666", "abc": "23"}
    # Node keeps the null in its attributes; here assigning None deletes the key
    assert saved(jar["C"].get(A, save=1, abc="null")) == {"xyz": "666"}
    found = sessions_of(jar["C"].get(A, soapp=1), uids["C"])
    assert {s["id"] for s in found} == {uids["C"], uids["D"]}
    assert [s.get("d") for s in found if s["id"] == uids["C"]] == [{"xyz": "666"}]

    # destroyall of user C (one session)
    assert jar["C"].get(A, destroyall=1) == f"USER: {uids['C']}\n1"
    assert jar["C"].get(A) == "UNKOWN"

    # user D in three browsers: destroy in one leaves the others; destroyall ends the rest
    for k in ("D2", "D3"):
        assert jar[k].get(A, upgrade=uids["D"]) == f"LOGGED IN - USER: {uids['D']}"
    for k in ("D", "D2", "D3"):
        assert jar[k].get(A) == f"USER: {uids['D']}"
    assert jar["D3"].get(A, destroy=1) == "killed + 1"
    assert jar["D"].get(A) == f"USER: {uids['D']}"
    assert jar["D2"].get(A) == f"USER: {uids['D']}"
    assert jar["D3"].get(A) == "UNKOWN"
    assert jar["D2"].get(A, destroyall=1) == f"USER: {uids['D']}\n2"
    for k in ("D", "D2", "D3"):
        assert jar[k].get(A) == "UNKOWN"
