"""Drive the replay viewer in headless Chromium (called by tests/viewer.rs; not a test on its own).

usage: viewer_e2e.py SCENARIO URL OUT_DIR [options as KEY=VALUE ...]

SCENARIO is what to check:
  replay    play advances time, step applies one event, scrub to the end, click a node and read
            its role and term in the side panel, screenshots at 1280x800 and 390x844
  offending the checker's offending operations are listed; clicking one jumps the replay to it
  load      print the page's own load time (performance.now() around fetch, parse, first render)
  live      the page of `concord sim --interactive`: run, crash the leader from the page and see
            another elected, restart it, cut and heal a link, send a write and see it committed,
            drop a message in flight, step, fork; screenshot viewer-live.png

Prints one JSON line with what it measured; exits non-zero (with a message) when an assertion
fails. Screenshots go to OUT_DIR.
"""

import json
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


def fail(message):
    print("ASSERTION FAILED: " + message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def browser(width, height):
    options = Options()
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", f"--window-size={width},{height}"]:
        options.add_argument(arg)
    if os.environ.get("CONCORD_NETLOG"):
        # Chromium's own log of every request, connection and auth challenge (what the page's
        # console does not say: a request held by the browser, for instance).
        options.add_argument(f"--log-net-log={os.environ['CONCORD_NETLOG']}-{width}.json")
        options.add_argument("--net-log-capture-mode=IncludeSensitive")
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    # Make the *viewport* exactly the requested size (headless windows have a minimum width, so
    # emulate the device's metrics instead of resizing the window).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    return driver


def load(driver, url, timeout_s=30):
    driver.get(url)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        state = driver.execute_script(
            "return window.viewer ? {ready: !!window.viewer.ready, error: window.viewer.error || null} : null")
        if state and state["error"]:
            fail("the page reports an error: " + state["error"])
        if state and state["ready"]:
            return
        time.sleep(0.05)
    fail(f"the page did not load within {timeout_s} s: status "
         + driver.find_element("id", "status").text)


def js(driver, script):
    return driver.execute_script(script)


def position(driver):
    return js(driver, "return {index: viewer.state.index, now: viewer.now, "
                      "total: viewer.trace.events.length, shown: document.getElementById('index').textContent}")


def panel_field(driver, name):
    els = driver.find_elements("css selector", f'#panel-body dd[data-field="{name}"]')
    return els[0].text if els else None


def wait_until(predicate, timeout_s, message):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    fail(message)


def replay(url, out):
    result = {}
    driver = browser(1280, 800)
    try:
        load(driver, url)
        result["load_ms"] = js(driver, "return viewer.loadMs")
        start = position(driver)
        check(start["index"] == 0 and start["total"] > 1000, f"a fresh page starts at event 0: {start}")

        # Play: virtual time must advance (fast speed so a second of wall time covers a lot).
        js(driver, "const s = document.getElementById('speed'); s.value = '-1'; s.dispatchEvent(new Event('input'))")
        driver.find_element("id", "play").click()
        wait_until(lambda: position(driver)["now"] > 0 and position(driver)["index"] > 0, 10,
                   "pressing play did not advance time")
        time.sleep(0.5)
        driver.find_element("id", "play").click()
        played = position(driver)
        check(played["now"] > 0, f"time advanced while playing: {played}")
        check(driver.find_element("id", "play").text.strip().endswith("Play"), "the button reads Play again after pause")

        # Step: exactly one more event, and the displayed counter follows.
        time.sleep(0.1)
        before = position(driver)
        driver.find_element("id", "step").click()
        time.sleep(0.1)
        after = position(driver)
        check(after["index"] == before["index"] + 1, f"step applies one event: {before} -> {after}")
        check(after["shown"] == str(after["index"]), f"the counter shows the event number: {after}")

        # Jump to the first election, then click the elected node and read the side panel.
        js(driver, "document.getElementById('scrub').value = 0; document.getElementById('scrub').dispatchEvent(new Event('input'))")
        driver.find_element("css selector", "[data-jump=election]").click()
        time.sleep(0.2)
        ev = js(driver, "return viewer.trace.events[viewer.state.index - 1]")
        check(ev["ev"] == "protocol" and ev["name"] in ("elected", "role"), f"jumped to an election event: {ev}")
        # Continue to the 'elected' event itself (a 'role: candidate' event may come first).
        for _ in range(10):
            if ev["name"] == "elected":
                break
            driver.find_element("css selector", "[data-jump=election]").click()
            time.sleep(0.1)
            ev = js(driver, "return viewer.trace.events[viewer.state.index - 1]")
        check(ev["name"] == "elected", f"found an election: {ev}")
        leader = ev["node"]
        driver.find_element("id", f"node-{leader}").click()
        wait_until(lambda: panel_field(driver, "role") is not None, 5, "clicking a node opens the side panel")
        check(driver.find_element("id", "panel-title").text == f"Node {leader}", "the panel names the node")
        check(panel_field(driver, "role") == "leader", f"the elected node is shown as leader: {panel_field(driver, 'role')}")
        check(panel_field(driver, "term") == str(ev["detail"]["term"]),
              f"the panel shows the term of the election: {panel_field(driver, 'term')} vs {ev['detail']}")
        result["leader"] = leader
        result["term"] = panel_field(driver, "term")
        ring_label = js(driver, f"return document.querySelector('#node-{leader} text.sub').textContent")
        check(ring_label.startswith("leader"), f"the ring labels the leader: {ring_label}")

        # Scrub to the end: every event applied, time at the last event.
        js(driver, "const s = document.getElementById('scrub'); s.value = s.max; s.dispatchEvent(new Event('input'))")
        time.sleep(0.3)
        end = position(driver)
        last_t = js(driver, "return viewer.trace.endTime")
        check(end["index"] == end["total"] and end["now"] == last_t, f"scrubbed to the end: {end}")
        # The log table: committed cells exist (the trace carries append events).
        committed = js(driver, "return document.querySelectorAll('#logs td.committed').length")
        check(committed > 0, "the log table shows committed entries at the end of the run")
        result["committed_cells"] = committed
        driver.find_element("id", "node-1").click()  # a real panel for the screenshot
        time.sleep(0.2)
        # Back to the middle of the run for a lively picture: messages in flight.
        js(driver, "const s = document.getElementById('scrub'); s.value = Math.floor(s.max * 0.41); s.dispatchEvent(new Event('input'))")
        time.sleep(0.3)
        result["dots_in_flight"] = js(driver, "return viewer.dotsShown")
        check(result["dots_in_flight"] > 0, "messages are drawn in flight mid-run")
        driver.save_screenshot(os.path.join(out, "viewer.png"))
        check(js(driver, "return document.documentElement.scrollWidth <= window.innerWidth + 1"),
              "no horizontal scrolling at 1280 px")
    finally:
        driver.quit()

    driver = browser(390, 844)
    try:
        load(driver, url)
        js(driver, "const s = document.getElementById('scrub'); s.value = Math.floor(s.max * 0.41); s.dispatchEvent(new Event('input'))")
        time.sleep(0.3)
        check(js(driver, "return document.documentElement.scrollWidth <= window.innerWidth + 1"),
              "no horizontal scrolling at phone width: " + str(js(driver, "return document.documentElement.scrollWidth")))
        driver.save_screenshot(os.path.join(out, "viewer-phone.png"))
    finally:
        driver.quit()
    return result


def offending(url, out):
    driver = browser(1280, 800)
    try:
        load(driver, url)
        verdict = driver.find_element("id", "verdict").text
        check("not-linearizable" in verdict, f"the verdict badge says not-linearizable: {verdict!r}")
        buttons = driver.find_elements("css selector", "#offending button")
        check(len(buttons) > 0, "the offending operations are listed")
        marked = js(driver, "return viewer.trace.ops.filter(o => o.offending).map(o => o.invoke)")
        check(len(marked) == len(buttons), f"every listed op is marked on the history: {marked}")
        buttons[0].click()
        time.sleep(0.3)
        index = js(driver, "return viewer.state.index")
        check(index - 1 in marked, f"clicking an offending op jumps to its invocation: event {index - 1}, marked {marked}")
        title = driver.find_element("id", "panel-title").text
        check(title.startswith("Client "), f"the side panel shows the operation: {title!r}")
        check(panel_field(driver, "checker") is not None, "the panel says why the checker rejected it")
        driver.save_screenshot(os.path.join(out, "viewer-offending.png"))
        return {"offending": len(buttons), "jumped_to": index - 1}
    finally:
        driver.quit()


def load_time(url, out):
    driver = browser(1280, 800)
    try:
        load(driver, url, timeout_s=120)
        # Scrubbing: the slowest of 20 seeks to random places (restore a snapshot, apply up to
        # 500 events, render).
        seek_ms = js(driver, """
            let worst = 0; let seed = 7;
            for (let k = 0; k < 20; k++) {
              seed = (seed * 1103515245 + 12345) % 2147483648;
              const at = seed % viewer.trace.events.length;
              const t0 = performance.now();
              const s = document.getElementById('scrub'); s.value = at; s.dispatchEvent(new Event('input'));
              render();
              worst = Math.max(worst, performance.now() - t0);
            }
            return worst;""")
        return {"load_ms": js(driver, "return viewer.loadMs"), "events": js(driver, "return viewer.trace.events.length"),
                "worst_seek_ms": seek_ms}
    finally:
        driver.quit()


def live_status(driver):
    return js(driver, "return viewer.live.status")


def ring_leaders(driver):
    """The nodes the ring labels as leader (what a person sees)."""
    return js(driver, """return viewer.trace.ids.filter(id =>
        document.querySelector('#node-' + id + ' text.sub').textContent.startsWith('leader')
        && !document.getElementById('node-' + id).classList.contains('down'))""")


def set_speed(driver, speed_log10):
    js(driver, f"const s = document.getElementById('speed'); s.value = '{speed_log10}'; "
               "s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change'))")


def click_fresh(driver, by, selector):
    """Click an element of the live page. The page is redrawn as the live run advances: an element
    found just before a redraw is stale by the time it is clicked (and such a click does nothing),
    so find it again and retry."""
    for attempt in range(10):
        try:
            driver.find_element(by, selector).click()
            return
        except StaleElementReferenceException:
            if attempt == 9:
                raise
            time.sleep(0.05)


def live_act(driver, node, act):
    """Select `node` on the ring and press one of its action buttons."""
    click_fresh(driver, "id", f"node-{node}")
    wait_until(lambda: driver.find_elements("css selector", f'#live-actions button[data-act="{act}"]'), 5,
               f"node {node} offers {act}")
    before = len(live_status(driver)["actions"])
    click_fresh(driver, "css selector", f'#live-actions button[data-act="{act}"]')
    wait_until(lambda: len(live_status(driver)["actions"]) > before, 5, f"{act} on node {node} was logged: "
               + driver.find_element("id", "live-error").text)


def live(url, out):
    result = {}
    driver = browser(1280, 800)
    try:
        load(driver, url)
        check(driver.find_element("css selector", "header h1 span").text == "live", "the header says live")
        check(js(driver, "return viewer.trace.ids.length") == 5, "five nodes on the ring")

        # Run at real time until the ring shows a leader.
        set_speed(driver, "0")
        driver.find_element("id", "play").click()
        wait_until(lambda: live_status(driver)["running"], 5, "Run starts the simulation")
        wait_until(lambda: len(ring_leaders(driver)) == 1, 20, "the ring shows a leader")
        first = ring_leaders(driver)[0]
        result["first_leader"] = first

        # Crash it from the page: the ring greys it out and another node becomes leader.
        live_act(driver, first, "crash")
        wait_until(lambda: "down" in driver.find_element("id", f"node-{first}").get_attribute("class"), 5,
                   "the crashed leader is drawn down")
        wait_until(lambda: ring_leaders(driver) and ring_leaders(driver)[0] != first, 20,
                   f"a new leader after crashing node {first}: ring leaders {ring_leaders(driver)}")
        second = ring_leaders(driver)[0]
        result["second_leader"] = second

        # Restart the old leader.
        live_act(driver, first, "restart")
        wait_until(lambda: "down" not in driver.find_element("id", f"node-{first}").get_attribute("class"), 5,
                   "the restarted node is drawn up")

        # Cut a link: drawn as a red dashed line between exactly those two nodes; then heal it.
        other = next(n for n in range(1, 6) if n not in (first, second))
        live_act(driver, second, f"cut-{other}")
        wait_until(lambda: js(driver, "return document.querySelectorAll('#cuts line.cut').length") == 1, 5,
                   "the cut is drawn")
        ends = js(driver, """const l = document.querySelector('#cuts line.cut');
            return [[+l.getAttribute('x1'), +l.getAttribute('y1')], [+l.getAttribute('x2'), +l.getAttribute('y2')]]""")
        want = js(driver, f"return [nodePos(viewer.trace, {second}), nodePos(viewer.trace, {other})]")
        check(all(abs(a - b) < 0.01 for p, q in zip(ends, want) for a, b in zip(p, q)),
              f"the cut joins nodes {second} and {other}: {ends} vs {want}")
        driver.save_screenshot(os.path.join(out, "viewer-live-cut.png"))
        live_act(driver, second, f"heal-{other}")
        wait_until(lambda: js(driver, "return document.querySelectorAll('#cuts line.cut').length") == 0, 5,
                   "healing the link removes the cut")

        # A client write, slowed down so the log table can be watched: committed on the leader.
        set_speed(driver, "-1.7")
        key = driver.find_element("id", "req-key")
        key.clear()
        key.send_keys("viewer")
        value = driver.find_element("id", "req-value")
        value.clear()
        value.send_keys("4242")
        driver.find_element("id", "req-write").click()
        wait_until(lambda: live_status(driver)["actions"][-1]["do"] == "write", 5, "the write was sent")
        committed = """return [...document.querySelectorAll('#logs td.committed')]
            .filter(td => (td.title || '').includes('"key":"viewer"') && td.title.includes('"value":"4242"')).length"""
        wait_until(lambda: js(driver, committed) >= 3, 20, "the write is committed on a majority in the log table")
        result["write_committed_cells"] = js(driver, committed)
        sent_to = live_status(driver)["actions"][-1]["node"]
        check(sent_to == ring_leaders(driver)[0], f"'the leader' sent it to the leader: {sent_to}")

        # Pause, pick a message in flight by clicking its dot, and drop it.
        driver.find_element("id", "play").click()
        wait_until(lambda: not live_status(driver)["running"], 5, "Pause stops the simulation")
        dropped = None
        # Paused at an arbitrary instant, no dot may be clickable: none in flight, or each one
        # under a node or redrawn as it is clicked. Then step one event (a send, usually) and look again.
        for _ in range(40):
            for dot in driver.find_elements("css selector", "#messages circle.msg[visibility=visible]"):
                try:
                    dot.click()
                except Exception:
                    continue  # under a node, or stale after a redraw: try another
                title = driver.find_element("id", "panel-title").text
                if title.startswith("Message ") and driver.find_elements("css selector", '#live-actions button[data-act="drop"]'):
                    candidate = int(title.split()[1])
                    # A dot drawn before the last step may belong to a message that step delivered:
                    # only one still in flight can be dropped.
                    if js(driver, f"return viewer.trace.arrivals.has({candidate})"):
                        dropped = candidate
                        break
            if dropped is not None:
                break
            before = live_status(driver)["events_processed"]
            click_fresh(driver, "id", "step")
            wait_until(lambda: live_status(driver)["events_processed"] > before, 5, "Step processes an event")
            time.sleep(0.1)
        check(dropped is not None, "a message in flight can be selected by clicking its dot")
        click_fresh(driver, "css selector", '#live-actions button[data-act="drop"]')
        wait_until(lambda: js(driver, f"return viewer.trace.events.some(e => e.ev === 'drop' && e.id === {dropped} && e.why === 'user')"),
                   5, f"message {dropped} was dropped")
        check(js(driver, f"return !viewer.trace.arrivals.has({dropped})"), "the dropped message is no longer in flight")
        result["dropped"] = dropped

        # Step: exactly one event.
        before = live_status(driver)["events_processed"]
        driver.find_element("id", "step").click()
        wait_until(lambda: live_status(driver)["events_processed"] == before + 1, 5, "Step processes one event")

        # Screenshot of the paused run, with a node selected.
        click_fresh(driver, "id", f"node-{second}")
        time.sleep(0.3)
        result["dots_in_flight"] = js(driver, "return viewer.dotsShown")
        driver.save_screenshot(os.path.join(out, "viewer-live.png"))

        # Fork: the run is rebuilt from its log, matches, and goes on with another seed.
        driver.find_element("id", "fork-seed").send_keys("77")
        driver.find_element("id", "fork").click()
        wait_until(lambda: driver.find_element("id", "live-error").text.startswith("forked"), 20,
                   "the fork succeeded: " + driver.find_element("id", "live-error").text)
        check(live_status(driver)["actions"][-1] == {**live_status(driver)["actions"][-1], "do": "fork", "seed": 77},
              "the fork is logged with its seed")
        result["actions"] = [a["do"] for a in live_status(driver)["actions"]]
        check(js(driver, "return document.documentElement.scrollWidth <= window.innerWidth + 1"),
              "no horizontal scrolling at 1280 px")
        return result
    finally:
        driver.quit()


def election(url, out):
    """A trial exported by `concord lab raft-elections --export-worst`: jump to the leader's crash,
    then step event by event until a new leader is elected; the panel shows it leading."""
    result = {}
    driver = browser(1280, 800)
    try:
        load(driver, url)
        # The faults before the crash are the one-way cuts that give the followers different logs.
        seen = []
        for _ in range(20):
            driver.find_element("css selector", "[data-jump=fault]").click()
            time.sleep(0.1)
            crash = js(driver, "return viewer.trace.events[viewer.state.index - 1]")
            seen.append(crash["ev"])
            if crash["ev"] == "crash":
                break
        check(crash["ev"] == "crash", f"the fault jumps reach the leader's crash: {seen}")
        result["faults_before_crash"] = len(seen) - 1
        result["crashed"] = crash["node"]
        # Press Step (the button, event by event) until the next `elected` event, in the page.
        stepped = js(driver, """
            const step = document.getElementById('step');
            for (let n = 1; n <= 5000 && viewer.state.index < viewer.trace.events.length; n++) {
                step.click();
                const ev = viewer.trace.events[viewer.state.index - 1];
                if (ev.ev === 'protocol' && ev.name === 'elected') return {steps: n, ev: ev};
            }
            return {steps: -1, ev: null};""")
        steps, elected = stepped["steps"], stepped["ev"]
        time.sleep(0.2)
        check(elected is not None, f"stepping from the crash reaches an election ({steps} steps)")
        check(elected["node"] != crash["node"], f"a new node leads: {elected}")
        driver.find_element("id", f"node-{elected['node']}").click()
        wait_until(lambda: panel_field(driver, "role") is not None, 5, "clicking a node opens the side panel")
        check(panel_field(driver, "role") == "leader", f"the elected node leads: {panel_field(driver, 'role')}")
        result["leader"] = elected["node"]
        result["steps"] = steps
        driver.save_screenshot(os.path.join(out, "viewer-election.png"))
    finally:
        driver.quit()
    return result


def main():
    scenario, url, out = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(out, exist_ok=True)
    result = {"replay": replay, "offending": offending, "load": load_time, "live": live,
              "election": election}[scenario](url, out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
