"""Drive the replay viewer on a Paxos trace in headless Chromium (called by tests/viewer_paxos.rs;
not a test on its own).

usage: viewer_paxos_e2e.py URL OUT_DIR

The trace must contain a crash of the leader and, after it, a new leader filling a hole with a
no-op. The script checks that the page knows the trace is Paxos; that play advances time; seeks to
the leader's crash and sees the node crashed; steps event by event from there (one event per
click); jumps to the no-op fill and on until that slot is chosen; then checks the slot grid: a
chosen slot, the no-op-filled slot marked as a filled hole and chosen, an acceptor that accepted the
no-op; the new leader's panel (role, ballot, promise); labelled message arrows in flight; and that
seeking back before the fill unmarks it. Screenshots viewer-paxos.png (1280x800) and
viewer-paxos-phone.png (390x844) go to OUT_DIR.

Prints one JSON line with what it found; exits non-zero (with a message) when a check fails.
"""

import json
import os
import sys
import time

from viewer_e2e import browser, check, js, load, panel_field, position, wait_until


def seek(driver, index):
    js(driver, f"const s = document.getElementById('scrub'); s.value = {index}; s.dispatchEvent(new Event('input'))")
    time.sleep(0.15)


# The leader's crash, and the first no-op fill after it: computed from the trace the page loaded.
FIND = """
const ev = viewer.trace.events;
const leading = {};
let crash = null;
for (let i = 0; i < ev.length; i++) {
  const e = ev[i];
  if (e.ev === 'protocol' && e.name === 'elected') leading[e.node] = e.detail.ballot;
  else if (e.ev === 'protocol' && e.name === 'preempted') delete leading[e.node];
  else if (e.ev === 'crash') {
    if (leading[e.node]) crash = {index: i, node: e.node, ballot: leading[e.node]};
    delete leading[e.node];
  } else if (crash && e.ev === 'protocol' && e.name === 'noop-filled') {
    let elected = null;
    for (let j = i + 1; j < ev.length && !elected; j++)
      if (ev[j].ev === 'protocol' && ev[j].name === 'elected' && ev[j].node === e.node) elected = {index: j, ballot: ev[j].detail.ballot};
    const chosen = viewer.trace.chosen.get(e.detail.slot);
    return {crash, fill: {index: i, node: e.node, slot: e.detail.slot, ballot: e.detail.ballot}, elected, chosen};
  }
}
return {crash, fill: null};
"""

GRID = """
const top = [...document.querySelectorAll('#logs table.paxos tr:nth-child(2) td')];
const cell = document.querySelector('#logs td[data-slot="%d"]');
const column = [...document.querySelectorAll('#logs table.paxos tr')].slice(2).map((tr) => {
  const header = [...document.querySelectorAll('#logs table.paxos tr:first-child th')].map((th) => th.textContent);
  const k = header.indexOf('%d');
  return k > 0 ? tr.children[k].className : null;
});
return {chosen: top.filter((td) => td.classList.contains('chosen')).map((td) => Number(td.dataset.slot)),
        filled: top.filter((td) => td.classList.contains('filled')).map((td) => Number(td.dataset.slot)),
        cell: cell ? cell.className : null, text: cell ? cell.textContent : null, column};
"""


def grid(driver, slot):
    return js(driver, GRID % (slot, slot))


def replay(url, out):
    result = {}
    driver = browser(1280, 800)
    try:
        load(driver, url)
        check(js(driver, "return viewer.trace.protocol") == "paxos", "the page sees a Paxos trace")
        legend = driver.find_element("id", "legend").text
        check("leader" in legend and "candidate" in legend, f"the legend names Paxos roles: {legend!r}")
        found = js(driver, FIND)
        check(found["crash"] is not None and found["fill"] is not None,
              f"the trace has a leader crash followed by a no-op fill: {found}")
        crash, fill = found["crash"], found["fill"]
        check(found["chosen"] is not None, f"the filled slot {fill['slot']} is chosen later in the trace: {found}")
        result.update(crash=crash, fill=fill)

        # Play advances time.
        js(driver, "const s = document.getElementById('speed'); s.value = '-1'; s.dispatchEvent(new Event('input'))")
        driver.find_element("id", "play").click()
        wait_until(lambda: position(driver)["index"] > 0, 10, "pressing play did not advance time")
        driver.find_element("id", "play").click()

        # Seek to the leader's crash: the node is drawn crashed.
        seek(driver, crash["index"] + 1)
        label = js(driver, f"return document.querySelector('#node-{crash['node']} text.sub').textContent")
        check(label == "crashed", f"the crashed leader is drawn crashed: {label!r}")
        check("down" in driver.find_element("id", f"node-{crash['node']}").get_attribute("class"),
              "the crashed node is greyed out")

        # Step from the crash: one event per click.
        for _ in range(5):
            before = position(driver)["index"]
            driver.find_element("id", "step").click()
            check(position(driver)["index"] == before + 1, "step applies exactly one event")

        # Jump to the next no-op fill (the button only Paxos traces show).
        button = driver.find_element("css selector", "[data-jump=noop-fill]")
        check(button.is_displayed(), "the 'no-op fill' jump is shown for a Paxos trace")
        button.click()
        time.sleep(0.2)
        check(position(driver)["index"] == fill["index"] + 1, f"jumped to the no-op fill: {position(driver)} vs {fill}")
        g = grid(driver, fill["slot"])
        check(g["cell"] is not None and "filled" in g["cell"] and "chosen" not in g["cell"],
              f"at the fill, slot {fill['slot']} is a filled hole, not chosen yet: {g}")

        # Step on (by the 'chosen' jump) until that slot is chosen.
        for _ in range(500):
            if position(driver)["index"] > found["chosen"]["index"]:
                break
            driver.find_element("css selector", "[data-jump=commit]").click()
        time.sleep(0.2)
        if position(driver)["index"] != found["chosen"]["index"] + 1:
            # The first to know was a replica learning it (not the leader counting): seek there.
            seek(driver, found["chosen"]["index"] + 1)
        check(position(driver)["index"] == found["chosen"]["index"] + 1, f"reached the slot's chosen event: {position(driver)}")
        g = grid(driver, fill["slot"])
        check("chosen" in g["cell"] and "filled" in g["cell"] and "noop" in g["cell"],
              f"slot {fill['slot']} is shown chosen, a filled hole, with a no-op: {g}")
        check(any(c and "noop" in c for c in g["column"]), f"some acceptor shows the no-op it accepted: {g}")
        others = [s for s in g["chosen"] if s != fill["slot"]]
        check(len(others) > 0, f"the grid shows other chosen slots: {g}")
        result["grid"] = g

        # The new leader: role and ballot on the ring and in the panel.
        leader, ballot = fill["node"], fill["ballot"]
        ring = js(driver, f"return document.querySelector('#node-{leader} text.sub').textContent")
        check(ring == f"leader · b {ballot}", f"the ring labels the new leader with its ballot: {ring!r}")
        driver.find_element("id", f"node-{leader}").click()
        wait_until(lambda: panel_field(driver, "role") is not None, 5, "clicking a node opens the side panel")
        check(panel_field(driver, "role") == "leader", f"the panel: role {panel_field(driver, 'role')}")
        check(panel_field(driver, "ballot") == ballot, f"the panel: ballot {panel_field(driver, 'ballot')} vs {ballot}")
        check(panel_field(driver, "promised") == ballot, f"the panel: promised {panel_field(driver, 'promised')}")
        result["leader"] = leader

        # Labelled arrows for messages in flight (the new leader's accepts and decides).
        arrows = js(driver, "return [...document.querySelectorAll('#messages text.msg-label')]"
                            ".filter((t) => t.getAttribute('visibility') === 'visible').map((t) => t.textContent)")
        check(len(arrows) > 0, "messages in flight are drawn as labelled arrows")
        check(all(a for a in arrows), f"every arrow has a label: {arrows}")
        result["arrow_labels"] = sorted(set(arrows))
        driver.save_screenshot(os.path.join(out, "viewer-paxos.png"))
        check(js(driver, "return document.documentElement.scrollWidth <= window.innerWidth + 1"),
              "no horizontal scrolling at 1280 px")

        # Seeking back before the fill unmarks the slot.
        seek(driver, fill["index"])
        g = grid(driver, fill["slot"])
        check(g["cell"] is None or ("filled" not in g["cell"] and "chosen" not in g["cell"]),
              f"before the fill, slot {fill['slot']} is neither filled nor chosen: {g}")
    finally:
        driver.quit()

    driver = browser(390, 844)
    try:
        load(driver, url)
        seek(driver, found["chosen"]["index"] + 1)
        check(js(driver, "return document.documentElement.scrollWidth <= window.innerWidth + 1"),
              "no horizontal scrolling at phone width")
        driver.save_screenshot(os.path.join(out, "viewer-paxos-phone.png"))
    finally:
        driver.quit()
    return result


def main():
    url, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    print(json.dumps(replay(url, out)))


if __name__ == "__main__":
    main()
