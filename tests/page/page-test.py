"""The fleet page in a real browser: what a person sees, checked against
the API. Run by tests/integration/page.sh (mode "check") and
tests/bench/page.sh (mode "bench"); both set up slipwayd, the hosts and
the images first. Each case prints one line to the results file:
"ok NAME [NOTE]", "FAIL NAME: WHY" or "skip NAME: WHY".

    page-test.py check|bench URL TOKEN OUT-DIR RESULTS [VIEWER-TOKEN]
"""
import atexit
import collections
import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import Browser  # noqa: E402

MODE, URL, TOKEN, OUT, RESULTS = sys.argv[1:6]
VIEWER = sys.argv[6] if len(sys.argv) > 6 else ""
results = open(RESULTS, "w")
figures = {}


def api(path, method="GET", body=None, token=TOKEN):
    req = urllib.request.Request(URL + path, method=method, headers={"Authorization": "Bearer " + token})
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def report(verdict, name, note=""):
    note = str(note).replace("\n", " ").replace("\t", " ")
    results.write(f"{verdict}\t{name}\t{note}\n")
    results.flush()


def case(name):
    def run(fn):
        try:
            note = fn()
            report("ok", name, note or "")
        except Skip as e:
            report("skip", name, str(e))
        except Exception as e:  # every case ends with a verdict
            report("FAIL", name, f"{type(e).__name__}: {e}".replace("\n", " ")[:600])
            with open(os.path.join(OUT, "failures.log"), "a") as f:
                f.write(f"--- {name}\n{traceback.format_exc()}\n")
            try:
                b.screenshot(os.path.join(OUT, "fail-" + name.split(":")[0].replace(" ", "-")[:40] + ".png"))
            except Exception:
                pass
        return fn
    return run


class Skip(Exception):
    pass


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def login(token):
    b.navigate(URL + "/")
    b.wait_for("document.readyState === 'complete' && !document.getElementById('login').hidden")
    b.type_into("#token", token)
    t0 = time.time()
    b.click("#login button")
    return t0


def api_matrix():
    counts = collections.Counter()
    versions = collections.Counter()
    for h in api("/v1/hosts")["hosts"]:
        counts[(h["labels"].get("service", ""), h["labels"].get("rack", ""))] += 1
        versions[h.get("version") or ""] += 1
    return counts, versions


PAGE_MATRIX = """[...document.querySelectorAll('#matrix td')].filter(td => td.dataset.total > 0)
    .map(td => [td.dataset.x, td.dataset.y, Number(td.dataset.total)])"""
# The columns and rows the matrix shows (its cells carry them, empty ones too).
PAGE_AXES = """[[...new Set([...document.querySelectorAll('#matrix td')].map(td => td.dataset.x))],
    [...new Set([...document.querySelectorAll('#matrix td')].map(td => td.dataset.y))]]"""


def natural(v):
    """The order the API gives an axis's values: numbers by their value."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", v) if p != ""]


def window_matches(counts, xkey_i, ykey_i):
    """The page's cells against the API's counts over the columns and rows
    the page shows; those must be the first of each axis in the API's order.
    Returns the page's cells."""
    page = {(x, y): n for x, y, n in b.eval(PAGE_MATRIX)}
    xs, ys = b.eval(PAGE_AXES)
    all_x = sorted({k[xkey_i] for k in counts}, key=natural)
    all_y = sorted({k[ykey_i] for k in counts}, key=natural)
    off_x = int(b.eval("document.getElementById('fleet-cols').dataset.offset"))
    off_y = int(b.eval("document.getElementById('fleet-rows').dataset.offset"))
    expect(xs == all_x[off_x:off_x + len(xs)], f"columns {xs[:5]}... are not the API's from {off_x}")
    expect(ys == all_y[off_y:off_y + len(ys)], f"rows {ys[:5]}... are not the API's from {off_y}")
    want = {k: n for k, n in counts.items() if k[0] in xs and k[1] in ys}
    expect(page == want, "cells differ: " + str({k: (page.get(k), want.get(k)) for k in set(page) | set(want) if page.get(k) != want.get(k)})[:300])
    return page

# ---------------------------------------------------------------------------

if MODE == "check":
    @case("the page and its files come from slipwayd itself: nothing from elsewhere")
    def _():
        with urllib.request.urlopen(URL + "/") as r:
            html = r.read().decode()
            csp = r.headers.get("Content-Security-Policy", "")
            expect(r.headers.get_content_type() == "text/html", f"content type {r.headers.get_content_type()}")
        expect("default-src 'self'" in csp, f"CSP: {csp!r}")
        for f in ("app.js", "app.css"):
            with urllib.request.urlopen(URL + "/ui/" + f) as r:
                text = r.read().decode()
            expect("http://" not in text and "https://" not in text, f"{f} names another site")
        expect("http" not in html.replace('name="viewport"', ""), "index.html names another site")

b = Browser(OUT)
atexit.register(b.close)
if MODE == "check":
    @case("a token the server does not know is refused at the login")
    def _():
        login("not-a-token")
        msg = b.wait_for("document.getElementById('login-error').textContent")
        expect("cannot log in" in msg, msg)
        expect(b.eval("document.getElementById('nav').hidden"), "the menu is shown")

@case("log in: the matrix of services by racks counts every host as the API does")
def _():
    t0 = login(TOKEN)
    b.wait_for("document.body.dataset.view === 'fleet'", timeout=120)
    figures["first_render_s"] = time.time() - t0
    counts, versions = api_matrix()
    page = window_matches(counts, 0, 1)
    racks = len({k[1] for k in counts})
    rows = b.eval("document.querySelectorAll('#matrix tr').length - 1")
    expect(rows == min(racks, 50), f"{rows} rows drawn for {racks} racks")
    total = int(b.eval("document.getElementById('hosts-total').textContent"))
    expect(total == sum(counts.values()), f"the total says {total}")
    expect(b.eval("sessionStorage.getItem('slipway.token')") == TOKEN, "the token is not in sessionStorage")
    b.screenshot(os.path.join(OUT, "fleet.png"))
    return f"{total} hosts, {racks} racks, {len(page)} cells drawn, first render {figures['first_render_s']:.2f} s after the login"

rollout = {}
spec_waves = []

@case("live: a rollout started elsewhere moves the matrix without a reload")
def _():
    b.eval("window.__noReload = 1")
    events0 = b.eval("slipway.stats.events")
    # The check stops after its first wave (a long bake); the bench goes on through the fleet.
    spec = {"image": "web:2.0", "waves": [10, "100%"], "bake": 3600} if MODE == "check" else \
        {"image": "web:2.0", "waves": ["1%", "10%", "100%"], "bake": 0}
    r = api("/v1/rollouts", "POST", spec)
    spec_waves.extend(spec["waves"])
    rollout.update(r)
    t0 = time.time()
    want = r["waves"][0]["hosts"]
    # The wave's hosts take their leases, reboot and report 2.0; the page hears of it by itself.
    b.wait_for(f"""(() => {{ const e = document.querySelector('.version-count[data-version="2.0"]');
        return e && Number(e.textContent.split(': ').at(-1)) {'===' if MODE == 'check' else '>='} {want}; }})()""", timeout=120)
    figures["wave1_seen_s"] = time.time() - t0
    expect(b.eval("window.__noReload") == 1, "the page was loaded again")
    _, versions = api_matrix()
    expect(MODE == "bench" or versions.get("2.0") == want, f"the API says {versions.get('2.0')} hosts run 2.0")
    b.screenshot(os.path.join(OUT, "fleet-rollout.png"))
    ev = b.eval("slipway.stats.events") - events0
    expect(ev > 0, "no event reached the page")
    return f"{want} hosts on 2.0 seen {figures['wave1_seen_s']:.1f} s after the start, {ev} events"

@case("a host's page shows the version it runs, its slots and its lease history")
def _():
    hosts = [h for h in api("/v1/hosts")["hosts"] if h.get("version") == "2.0"]
    expect(hosts, "no host runs 2.0")
    h = hosts[0]
    b.eval(f"location.hash = '#/host/{h['id']}'")
    b.wait_for(f"document.body.dataset.view === 'host' && document.getElementById('host-id').textContent === '{h['id']}'")
    v = b.eval("document.getElementById('host-version').textContent")
    expect(v == "2.0", f"the page says version {v!r}")
    hist = b.eval("[...document.querySelectorAll('table.audit')].at(-1).innerText")
    expect("lease.grant" in hist, "no lease.grant in the history: " + hist[:200])
    b.screenshot(os.path.join(OUT, "host.png"))

@case("the rollout's page: waves, groups against their budget; pause through the button")
def _():
    rid = rollout["id"]
    b.eval(f"location.hash = '#/rollout/{rid}'")
    b.wait_for("document.body.dataset.view === 'rollout' && document.getElementById('rollout-state').dataset.state === 'running'")
    waves = len(spec_waves)
    expect(b.eval("document.querySelectorAll('#waves tr[data-wave]').length") == waves, f"not {waves} waves")
    groups = b.eval("document.getElementById('groups') ? document.getElementById('groups').innerText : ''")
    expect("max_unavailable" in groups, "no budget beside the groups: " + groups[:200])
    b.screenshot(os.path.join(OUT, "rollout.png"))
    if MODE == "bench":
        return
    b.click("#btn-pause")
    b.wait_for("document.getElementById('rollout-state').dataset.state === 'paused'")
    r = api(f"/v1/rollouts/{rid}")
    expect(r["state"] == "paused" and r["reason"] == "paused by an operator", f"the API says {r['state']}: {r['reason']}")
    expect(b.eval("!!document.getElementById('btn-resume') && !document.getElementById('btn-pause')"),
           "resume is not offered in place of pause")
    b.screenshot(os.path.join(OUT, "rollout-paused.png"))

if MODE == "check":
    @case("the audit view shows an entry as it is written")
    def _():
        b.eval("location.hash = '#/audit'")
        b.wait_for("document.body.dataset.view === 'audit'")
        h = api("/v1/hosts")["hosts"][0]["id"]
        api(f"/v1/hosts/{h}/labels", "POST", {"set": {"page-test": "yes"}})
        b.wait_for(f"""[...document.querySelectorAll('#audit tr')]
            .some(tr => tr.innerText.includes('host.labels') && tr.innerText.includes('{h}'))""", timeout=20)

    @case("leases: who holds one, and the budget a waiting host is blocked by")
    def _():
        b.eval("location.hash = '#/leases'")
        b.wait_for("document.body.dataset.view === 'leases'")
        held = sum(1 for h in api("/v1/hosts")["hosts"] if h.get("lease"))
        rows = b.eval("document.querySelectorAll('#leases tr').length - 1")
        # Leases come and go while the hosts run: the page's list is one moment's.
        expect(rows >= 0 and "held" in b.eval("document.body.innerText"), "no lease list")
        waiting = b.eval("document.getElementById('waiting').innerText")
        b.screenshot(os.path.join(OUT, "leases.png"))
        return f"{rows} held on the page, {held} by the API now; waiting table: {waiting.count(chr(10))} rows"

    @case("images: the package diff between two images")
    def _():
        b.eval("location.hash = '#/images'")
        b.wait_for("document.body.dataset.view === 'images' && !!document.getElementById('btn-diff')")
        b.click("#btn-diff")
        t = b.wait_for("document.getElementById('diff-table') && document.getElementById('diff-table').innerText")
        expect("busybox" in t and "1.35.0-1" in t and "1.36.1-1" in t, "busybox's change missing: " + t)
        expect("extra" in t and "added" in t, "the added package missing: " + t)
        expect("kernel" not in t, "an unchanged package listed: " + t)
        # An image event draws the view again: the choice and the diff stay.
        renders = b.eval("S.stats.renders")
        b.eval("S.view.refresh()")
        b.wait_for(f"S.stats.renders > {renders}")
        again = b.eval("document.getElementById('diff-table') ? document.getElementById('diff-table').innerText : ''")
        expect(again == t, "the diff is gone after the view was drawn again: " + again[:200])
        b.screenshot(os.path.join(OUT, "images.png"))

    @case("instances: this server and the leader")
    def _():
        b.eval("location.hash = '#/instances'")
        b.wait_for("document.body.dataset.view === 'instances'")
        leader = api("/v1/instances")["leader"]["instance"]
        expect(b.eval("document.getElementById('leader').textContent") == leader, "another leader shown")

    @case("many rows: the matrix shows 50 at a time, the API a window of them; next and previous move it")
    def _():
        hosts = sorted(h["id"] for h in api("/v1/hosts")["hosts"])
        n = len(hosts)
        for i, h in enumerate(hosts):
            api(f"/v1/hosts/{h}/labels", "POST", {"set": {"unit": f"u{i}"}})
        f = api(f"/v1/fleet?y=unit&y_offset={n - 10}&y_limit=50")
        expect(f["y_total"] == n and f["ys"] == [f"u{i}" for i in range(n - 10, n)], f"API window: {f['y_total']} {f['ys'][:3]}")
        expect(sum(c["total"] for c in f["cells"]) == 10 and f["hosts"] == n, f"API cells: {len(f['cells'])}")
        f = api("/v1/fleet?y=unit&x_limit=0&y_limit=0")
        expect(f["cells"] == [] and f["xs"] == [] and f["x_total"] == 5, f"empty window: {f['x_total']}, {len(f['cells'])} cells")
        try:
            api("/v1/fleet?y_limit=1001")
            expect(False, "y_limit 1001 accepted")
        except urllib.error.HTTPError as e:
            expect(e.code == 400, f"y_limit 1001: {e.code}")
        b.eval("location.hash = '#/fleet'")
        b.wait_for("document.body.dataset.view === 'fleet'")
        b.eval("(s => { s.value = 'unit'; s.dispatchEvent(new Event('change')); })(document.getElementById('fleet-y'))")
        b.wait_for(f"document.getElementById('fleet-rows') && document.getElementById('fleet-rows').dataset.total === '{n}'")
        counts = collections.Counter()
        for h in api("/v1/hosts")["hosts"]:
            counts[(h["labels"].get("service", ""), h["labels"].get("unit", ""))] += 1
        pages = 0
        seen = set()
        while True:
            off = pages * 50
            b.wait_for(f"document.getElementById('fleet-rows').dataset.offset === '{off}'")
            expect(b.eval("document.querySelectorAll('#matrix tr').length - 1") == min(50, n - off), "not a page of rows")
            seen |= set(window_matches(counts, 0, 1))
            pages += 1
            if b.eval("document.getElementById('fleet-rows-next').disabled"):
                break
            b.click("#fleet-rows-next")
        expect(off + 50 >= n and len(seen) == len(counts), f"{len(seen)} cells over {pages} pages, {len(counts)} in the fleet")
        b.screenshot(os.path.join(OUT, "fleet-rows-paged.png"))
        b.click("#fleet-rows-prev")
        b.wait_for(f"document.getElementById('fleet-rows').dataset.offset === '{off - 50}'")
        window_matches(counts, 0, 1)
        b.eval("(s => { s.value = 'rack'; s.dispatchEvent(new Event('change')); })(document.getElementById('fleet-y'))")
        b.wait_for("document.getElementById('fleet-rows').dataset.offset === '0' && document.getElementById('fleet-y').value === 'rack'")
        return f"{n} rows in {pages} pages"

    pipeline = {}

    @case("a pipeline waits for its approval; Approve through the page moves it to its next stage")
    def _():
        t0 = time.time()
        # Its stages need hosts in no other rollout: the paused one ends.
        if api(f"/v1/rollouts/{rollout['id']}")["state"] != "aborted":
            api(f"/v1/rollouts/{rollout['id']}/abort", "POST")
        hosts = sorted(h["id"] for h in api("/v1/hosts")["hosts"] if h.get("version") == "2.0")
        expect(len(hosts) >= 2, f"{len(hosts)} hosts on 2.0")
        for h, stage in zip(hosts, ("staging", "production")):
            api(f"/v1/hosts/{h}/labels", "POST", {"set": {"pipeline-env": stage}})
        stage = lambda name: {"name": name, "rollout": {"selector": {"pipeline-env": name}}, "gates": {"approval": True}}
        p = api("/v1/pipelines", "POST", {"name": "page-test", "image": "web:2.0", "stages": [stage("staging"), stage("production")]})
        pipeline.update(p)
        b.eval("location.hash = '#/pipelines'")
        b.wait_for(f"document.body.dataset.view === 'pipelines' && !!document.querySelector('#pipelines tr[data-id=\"{p['id']}\"]')")
        row = b.eval(f"document.querySelector('#pipelines tr[data-id=\"{p['id']}\"]').innerText")
        expect("page-test" in row and "web:2.0" in row and "staging" in row, "the list's row: " + row)
        b.click(f"#pipelines tr[data-id=\"{p['id']}\"] a")
        # The page follows the pipeline by itself until it waits.
        b.wait_for("document.body.dataset.view === 'pipeline' && document.getElementById('pipeline-state').textContent === 'waiting for approval'", timeout=60)
        stages = b.eval("[...document.querySelectorAll('#stages tr[data-stage]')].map(tr => [tr.dataset.stage, tr.dataset.state])")
        expect(stages == [["staging", "approval"], ["production", "pending"]], f"stages {stages}")
        gate = b.eval("document.querySelector('#stages tr[data-stage=staging] li[data-gate=approval]').innerText")
        expect("waiting" in gate, "the approval gate says " + gate)
        expect(b.eval("!!document.getElementById('btn-pipeline-abort')"), "no Abort button")
        b.screenshot(os.path.join(OUT, "pipeline-waiting.png"))
        t1 = time.time()
        b.click("#btn-pipeline-approve")
        b.wait_for("document.getElementById('pipeline-stage').textContent === 'production' && "
                   "document.querySelector('#stages tr[data-stage=staging]').dataset.state === 'promoted'", timeout=60)
        a = api(f"/v1/pipelines/{p['id']}")
        expect(a["stage"] == "production" and a["stages"][0]["approved_by"] == "ci", f"the API says {a['stage']}, approved by {a['stages'][0].get('approved_by')}")
        b.screenshot(os.path.join(OUT, "pipeline-approved.png"))
        return f"{time.time() - t0:.1f} s, {t1 - t0:.1f} s of them to the first wait"

    @case("a viewer's token: the rollout and the pipeline are shown without their buttons")
    def _():
        b.click("#logout")
        if VIEWER:
            login(VIEWER)
        else:
            # A server without roles: GET /v1/whoami is answered by the test,
            # which checks the page's side of the contract.
            b.stub("/v1/whoami", 200, {"name": "watcher", "role": "viewer"})
            login(TOKEN)
        b.wait_for("document.body.dataset.view === 'fleet'")
        b.eval(f"location.hash = '#/rollout/{rollout['id']}'")
        b.wait_for("document.body.dataset.view === 'rollout'")
        expect(b.eval("document.body.dataset.role") == "viewer", "the page does not know the role")
        expect(b.eval("document.querySelectorAll('#rollout-actions button').length") == 0, "write buttons shown")
        expect(b.eval("document.getElementById('who').textContent") == "watcher (viewer)", "the name and role not shown")
        if pipeline:
            b.eval(f"location.hash = '#/pipeline/{pipeline['id']}'")
            # Its second stage waits for an approval in turn.
            b.wait_for("document.body.dataset.view === 'pipeline' && document.getElementById('pipeline-state').textContent === 'waiting for approval'", timeout=60)
            expect(b.eval("document.querySelectorAll('button[id^=btn-pipeline]').length") == 0, "a viewer is offered Approve or Abort")
            b.screenshot(os.path.join(OUT, "pipeline-viewer.png"))
        if not VIEWER:
            return "whoami answered by the test: this server has no token roles"

    @case("no script error in the page")
    def _():
        expect(not b.console, "; ".join(b.console)[:500])
else:
    # The bench: how fast the page follows a rollout of the whole fleet.
    @case("update rate while the fleet moves")
    def _():
        b.eval("location.hash = '#/fleet'")
        b.wait_for("document.body.dataset.view === 'fleet'")
        s0 = b.eval("JSON.stringify(slipway.stats)")
        a0 = api("/v1/audit?last=1")["entries"][-1]["id"]
        secs = float(os.environ.get("PAGE_BENCH_SECONDS", "20"))
        api(f"/v1/rollouts/{rollout['id']}/resume", "POST") if api(f"/v1/rollouts/{rollout['id']}")["state"] == "paused" else None
        time.sleep(secs)
        s1 = json.loads(b.eval("JSON.stringify(slipway.stats)"))
        s0 = json.loads(s0)
        lag = b.eval("slipway.lastEvent")
        a1 = api("/v1/audit?last=1")["entries"][-1]["id"]
        figures["events_written_per_s"] = (a1 - a0) / secs
        figures["events_seen_per_s"] = (s1["events"] - s0["events"]) / secs
        figures["matrix_redraws_per_s"] = (s1["refreshes"] - s0["refreshes"]) / secs
        figures["matrix_redraw_ms"] = s1["lastRenderMs"]
        figures["events_behind_at_end"] = a1 - lag if lag else None
    figures["heap_mb"] = b.eval("performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null")

with open(os.path.join(OUT, "figures.json"), "w") as f:
    json.dump(figures, f, indent=1)
results.close()
