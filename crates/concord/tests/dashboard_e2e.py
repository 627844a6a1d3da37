"""Drive the live cluster dashboard in headless Chromium (called by tests/dashboard.rs).

usage: dashboard_e2e.py SCENARIO URL OUT_DIR

SCENARIO:
  faults    a 3-node cluster started with --allow-fault-injection; URL is a follower's dashboard.
         See the leader; partition it from the page and see another elected (the old one shown
         partitioned); heal it; stop the leader from the page and see another elected (the old one
         unreachable); screenshots dashboard.png (1280x800) and dashboard-phone.png (390x844);
         then stop the node serving the page: the page says so; print {"restart": ID} so the
         test restarts it, and see the page reconnect by itself.
  nofaults  a node without the flag: the page works and shows no fault-injection buttons.
  eventual  `concord up --mode eventual`; URL is node 1's dashboard: every member alive in its SWIM
         view, N/R/W shown, and a write from the page counted in its keys; screenshot
         dashboard-eventual.png.
  restart   `concord up --allow-fault-injection` with node 3 killed (kill -9); URL is node 1's
         dashboard. Node 3 is shown unreachable with a Restart button; clicking it has `up` start
         the node again, and the page shows it up; screenshot dashboard-restart.png.
  sharded   `concord up --shards 4 --replicas 2` on 3 nodes; URL is the dashboard of a node that
         does not replicate every shard. Every shard is a row with its leader (also those the node
         does not replicate) and its replicas per node, the slot strip is drawn by shard; then it
         prints {"move": true} so the test starts a slot move, sees the move listed with its phase
         and highlighted in the strip (screenshot dashboard-sharded.png), and waits for it to end
         with the slot drawn in its new shard.

Prints JSON lines: requests to the test ({"restart": id}) and, last, the result. Exits non-zero
with a message when an assertion fails. Reuses viewer_e2e.py's browser helpers.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from viewer_e2e import browser, check, fail, js, wait_until  # noqa: E402

ELECTION_S = 20  # generous: the CI machine may be busy


def load(driver, url, timeout_s=20):
    driver.get(url)
    wait_until(lambda: js(driver, "return !!(window.dashboard && window.dashboard.ready)"), timeout_s,
               "the dashboard did not receive a snapshot: " + driver.find_element("id", "conn").text)


def state(driver):
    return js(driver, """const d = window.dashboard; return {ready: d.ready, connected: d.connected,
        leader: d.leader, members: d.members, served_by: d.snapshot ? d.snapshot.served_by : null,
        fault_injection: d.snapshot ? d.snapshot.fault_injection : null}""")


def text(driver, selector):
    """The rendered text of what the selector finds, read in one script: the table is redrawn twice a
    second, so an element found first and read after may be stale by then."""
    return js(driver, f"const e = document.querySelector({json.dumps(selector)}); return e ? e.innerText : null")


def lab_click(driver, action, node):
    """Click a member's fault button and wait for this click's own answer. The click runs in one
    script (find, check, click): the table is redrawn twice a second, and a WebDriver click between
    a redraw's removal and insertion could land on nothing. The answer line is cleared first, so the
    previous action's answer is never taken for this one's."""
    selector = f'#members-body button[data-action="{action}"][data-node="{node}"]'
    click_js = f"""const b = document.querySelector({json.dumps(selector)});
        if (!b || b.disabled) return false; b.click(); return true;"""
    wait_until(lambda: js(driver, f"const b = document.querySelector({json.dumps(selector)}); return !!b && !b.disabled"),
               10, f"no enabled {action} button for node {node}")
    js(driver, "const o = document.getElementById('fault-result'); o.textContent = '';")
    wait_until(lambda: js(driver, click_js), 10, f"could not click {action} on node {node}")
    # Said on failure: which node's page sent the click.
    sys.stderr.write(f"clicked {action} on node {node} from {driver.current_url} (node {state(driver)['served_by']})\n")
    if action == "stop":
        # Stop asks for a second click.
        wait_until(lambda: text(driver, selector) == "Confirm stop", 3, "Stop asks for confirmation")
        wait_until(lambda: js(driver, click_js), 10, f"could not confirm stop on node {node}")
    answered = lambda: (text(driver, "#fault-result") or "")
    wait_until(lambda: answered().startswith(tuple("0123456789")) and answered().endswith("."), 10,
               f"{action} node {node} was not answered: {answered()!r}")
    check("failed" not in answered(), f"{action} node {node} answered: {answered()!r}")


def shown_leader(driver):
    return text(driver, "#leader")


def row_state(driver, node):
    return text(driver, f'tr[data-node="{node}"] [data-field="state"]') or ""


def leave_leader(driver, leader):
    """If the leader serves this page, open a follower's dashboard instead (stopping the leader
    must not take the page's server with it)."""
    if state(driver)["served_by"] != leader:
        return
    href = js(driver, f"""const a = [...document.querySelectorAll('#members-body tr:not(.unreachable) td:first-child a')]
        .find(a => !a.closest('tr').matches('[data-node="{leader}"]')); return a ? a.href : null""")
    check(href, "another member's dashboard is linked")
    load(driver, href)
    check(state(driver)["served_by"] != leader, "moved to a follower's dashboard")


def start_writes(driver):
    # One write at a time (browsers allow few connections per host; the event stream needs one).
    js(driver, """window.writing = true; (async () => { let n = 0;
        while (window.writing) { try { await fetch('/v1/kv/demo-' + (n++ % 20), {method: 'PUT', body: 'v' + n}); }
        catch (e) {} await new Promise(r => setTimeout(r, 40)); } })()""")


def faults(url, out):
    result = {}
    driver = browser(1280, 800)
    try:
        load(driver, url)
        s = state(driver)
        check(s["fault_injection"] is True, f"the node reports fault injection on: {s}")
        check(not driver.find_element("id", "fault-flag").get_attribute("hidden"), "the fault-injection badge is shown")
        check(text(driver, "#shards-section").find("No sharding in this mode") >= 0, "the page says there is no sharding")
        wait_until(lambda: state(driver)["leader"] is not None, ELECTION_S, "a leader is shown")
        first = state(driver)["leader"]
        wait_until(lambda: shown_leader(driver) == f"node {first}", 5, "the leader card names the leader")
        check(text(driver, f'tr[data-node="{first}"] [data-field="role"]') == "leader", "the leader's row says leader")
        result["first_leader"] = first
        start_writes(driver)

        # Partition the leader: another is elected; the old one is shown partitioned.
        leave_leader(driver, first)
        start_writes(driver)
        lab_click(driver, "partition", first)
        wait_until(lambda: state(driver)["leader"] not in (None, first)
                   and state(driver)["members"].get(str(first)) == "isolated", ELECTION_S,
                   f"a new leader after partitioning node {first}: {state(driver)}")
        check(row_state(driver, first).startswith("partitioned"), f"row {first} says partitioned: {row_state(driver, first)}")
        result["after_partition"] = state(driver)["leader"]
        lab_click(driver, "heal", first)
        wait_until(lambda: state(driver)["members"].get(str(first)) in ("follower", "leader"), ELECTION_S,
                   f"node {first} rejoins after the heal: {state(driver)}")

        # Stop the leader's process from the page: another is elected; the old one is unreachable.
        wait_until(lambda: state(driver)["leader"] is not None, ELECTION_S, "a leader after the heal")
        leader = state(driver)["leader"]
        leave_leader(driver, leader)
        start_writes(driver)
        # Another node than the first page's when that one led: the page reached by its "open" link.
        result["stop_clicked_on"] = state(driver)["served_by"]
        lab_click(driver, "stop", leader)
        wait_until(lambda: state(driver)["leader"] not in (None, leader)
                   and state(driver)["members"].get(str(leader)) == "unreachable", ELECTION_S,
                   f"a new leader after stopping node {leader}: {state(driver)}")
        new = state(driver)["leader"]
        wait_until(lambda: shown_leader(driver) == f"node {new}", 5, "the leader card names the new leader")
        check(row_state(driver, leader).startswith("unreachable"), f"row {leader} says unreachable: {row_state(driver, leader)}")
        check(text(driver, f'tr[data-node="{leader}"] [data-field="role"]') == "was leader",
              "the stopped node's last known role is shown")
        check(text(driver, "#reachable") == "2 of 3", "2 of 3 members reachable: " + str(text(driver, "#reachable")))
        result["stopped"] = leader
        result["second_leader"] = new
        # (The serving node records a new leader once it hears from it; the page may see the leader's
        # own status first.)
        changes = lambda: js(driver, "return document.querySelectorAll('#timeline line.change').length")
        wait_until(lambda: changes() >= 2, 10, f"the timeline marks both leader changes ({changes()})")
        wait_until(lambda: js(driver, "return !!document.querySelector('#requests-body tr[data-kind=put]')"), 10,
                   "the page's writes show up in the request table")
        time.sleep(1.5)  # a few more samples in the charts
        put_rate = js(driver, "const k = dashboard.snapshot.requests.kinds.find(k => k.kind === 'put'); return k && k.rate_per_s")
        check(put_rate and put_rate > 0, f"a put rate is shown: {put_rate}")
        result["put_rate_per_s"] = put_rate
        check(js(driver, "return document.documentElement.scrollWidth <= window.innerWidth + 1"),
              "no horizontal scrolling at 1280 px")
        driver.save_screenshot(os.path.join(out, "dashboard.png"))
        serving_url = driver.current_url

        # Phone width: the same page, readable without sideways scrolling.
        phone = browser(390, 844)
        try:
            load(phone, serving_url)
            wait_until(lambda: shown_leader(phone) == f"node {new}", 10, "the phone page shows the leader")
            time.sleep(1.0)
            check(js(phone, "return document.documentElement.scrollWidth <= window.innerWidth + 1"),
                  "no horizontal scrolling at 390 px")
            phone.save_screenshot(os.path.join(out, "dashboard-phone.png"))
        finally:
            phone.quit()

        # Stop the node that serves the page: the page says so, retries, and comes back by itself.
        serving = state(driver)["served_by"]
        js(driver, "window.writing = false")
        lab_click(driver, "stop", serving)
        wait_until(lambda: not state(driver)["connected"] and driver.find_element("id", "banner").is_displayed(),
                   10, "the page notices that its node is gone")
        banner = driver.find_element("id", "banner").text
        check(f"Node {serving}" in banner and "unreachable" in banner, f"the banner says so: {banner}")
        check(text(driver, "#conn") == "disconnected", "the badge says disconnected")
        driver.save_screenshot(os.path.join(out, "dashboard-disconnected.png"))
        print(json.dumps({"restart": serving}), flush=True)
        wait_until(lambda: state(driver)["connected"] and not driver.find_element("id", "banner").is_displayed(),
                   30, "the page reconnects once the node is back")
        wait_until(lambda: state(driver)["members"].get(str(serving)) in ("follower", "leader", "candidate", "pre-candidate"),
                   10, f"node {serving} is shown again: {state(driver)}")
        result["reconnected"] = True
        return result
    finally:
        driver.quit()


def nofaults(url, out):
    driver = browser(1280, 800)
    try:
        load(driver, url)
        s = state(driver)
        check(s["fault_injection"] is False, f"the node reports fault injection off: {s}")
        wait_until(lambda: state(driver)["leader"] is not None, ELECTION_S, "a leader is shown")
        check(js(driver, "return document.querySelectorAll('button[data-action]').length") == 0, "no fault-injection buttons")
        check(not driver.find_element("id", "fault-flag").is_displayed(), "no fault-injection badge")
        check(not driver.find_element("css selector", "th.fault-col").is_displayed(), "no fault-injection column")
        driver.save_screenshot(os.path.join(out, "dashboard-nofaults.png"))
        return {"leader": state(driver)["leader"]}
    finally:
        driver.quit()


def restart(url, out):
    driver = browser(1280, 800)
    try:
        load(driver, url)
        check(js(driver, "return window.dashboard.snapshot.restart") is True, "the page knows `up` can restart nodes")
        wait_until(lambda: "unreachable" in row_state(driver, 3), ELECTION_S, "node 3 is shown unreachable")
        check(js(driver, """return document.querySelectorAll('#members-body button[data-action="restart"]').length""") == 1,
              "only the node that is down has a Restart button")
        lab_click(driver, "restart", 3)
        wait_until(lambda: row_state(driver, 3).startswith("up"), 30, "node 3 is shown up again")
        check(js(driver, """return document.querySelectorAll('#members-body button[data-action="restart"]').length""") == 0,
              "no Restart button once every node is up")
        driver.save_screenshot(os.path.join(out, "dashboard-restart.png"))
        return {"restarted": 3}
    finally:
        driver.quit()


def eventual(url, out):
    driver = browser(1280, 800)
    try:
        driver.get(url)
        wait_until(lambda: js(driver, "return !!(window.eventualDashboard && window.eventualDashboard.ready)"), 20,
                   "the eventual dashboard did not load /v1/cluster")
        states = lambda: js(driver, "return [...document.querySelectorAll('#members tr td:nth-child(2)')].map(td => td.textContent)")
        wait_until(lambda: states() == ["alive", "alive", "alive"], 20, f"every member alive: {states()}")
        check(text(driver, "#quorums") == "3 / 2 / 2", "N/R/W are shown: " + str(text(driver, "#quorums")))
        js(driver, "fetch('/v1/kv/from-the-page', {method: 'PUT', body: 'hello'})")
        wait_until(lambda: int(text(driver, "#acked") or 0) >= 1, 10, "the page's write is counted")
        driver.save_screenshot(os.path.join(out, "dashboard-eventual.png"))
        return {"members": len(states())}
    finally:
        driver.quit()


def sharded(url, out):
    driver = browser(1280, 900)
    try:
        driver.get(url)
        wait_until(lambda: js(driver, "return !!(window.shardDashboard && window.shardDashboard.ready)"), 20,
                   "the sharded dashboard did not load /v1/cluster: " + str(js(driver, "return window.shardDashboard && window.shardDashboard.error")))
        rows = lambda: js(driver, """return [...document.querySelectorAll('#grid tbody tr')].map(tr => ({
            shard: Number(tr.dataset.shard), leader: tr.dataset.leader,
            roles: Object.fromEntries([...tr.querySelectorAll('td[data-node]')].map(td => [td.dataset.node, td.dataset.role])),
            text: tr.innerText}))""")
        view = lambda: js(driver, "return window.shardDashboard.view")
        wait_until(lambda: len(rows()) == len(view()["shards"]) and all(r["leader"] for r in rows()), 20,
                   f"every shard is shown with a leader: {rows()}")
        me = view()["node"]
        not_here = 0
        for r in rows():
            leader = r["leader"]
            check(r["roles"].get(leader) == "leader", f"shard {r['shard']}: its leader n{leader} is marked in its node's column: {r}")
            check(f"n{leader}" in r["text"], f"shard {r['shard']}: the leader is written out: {r}")
            replicas = [n for n, role in r["roles"].items() if role in ("leader", "replica")]
            check(len(replicas) == 2, f"shard {r['shard']}: two replicas shown: {r}")
            if str(me) not in replicas:
                not_here += 1
        check(not_here >= 1, f"node {me} lacks a shard, and still shows its leader: {rows()}")
        check(text(driver, "#epoch") == str(view()["epoch"]), "the map epoch is shown")
        ranges = js(driver, "return document.querySelectorAll('#strip rect.range').length")
        check(ranges == len(view()["ranges"]) and ranges >= 4, f"the strip draws every range: {ranges}")
        check(js(driver, "return document.querySelectorAll('#strip rect.move').length") == 0, "no move yet")

        print(json.dumps({"move": True}), flush=True)
        moving = lambda: js(driver, """const tr = document.querySelector('#moves tr.move'); if (!tr) return null;
            const m = tr.dataset.move;
            return {move: m, slots: tr.dataset.slots, from: tr.dataset.from, to: tr.dataset.to, phase: tr.dataset.phase,
                    highlighted: !!document.querySelector(`#strip rect.move[data-move="${m}"]`),
                    label: (document.querySelector(`#strip text[data-move="${m}"]`) || {}).textContent || null,
                    count: document.getElementById('move-count').textContent}""")
        wait_until(lambda: moving() is not None, 20, "the move is shown while in progress")
        seen = moving()
        check(seen["count"] == "1", f"one move in progress: {seen}")
        driver.save_screenshot(os.path.join(out, "dashboard-sharded.png"))
        slot = int(seen["slots"].split("-")[0])
        wait_until(lambda: moving() is None, 60, "the move ends")
        owner = lambda: js(driver, f"""const r = [...document.querySelectorAll('#strip rect.range')]
            .find(r => {{ const [a, b] = r.dataset.slots.split('-').map(Number); return a <= {slot} && {slot} <= (b ?? a); }});
            return r ? Number(r.dataset.shard) : null""")
        wait_until(lambda: owner() == int(seen["to"]), 10, f"slot {slot} is drawn in shard {seen['to']}: {owner()}")
        return {"node": me, "shards": len(rows()), "leaders_shown": sum(1 for r in rows() if r["leader"]),
                "leaders_not_replicated_here": not_here, "move": seen, "owner_after": owner()}
    finally:
        driver.quit()


def main():
    scenario, url, out = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(out, exist_ok=True)
    result = {"faults": faults, "nofaults": nofaults, "restart": restart, "eventual": eventual,
              "sharded": sharded}[scenario](url, out)
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    main()
