"""Open a cache node's live page in headless Chromium (called by tests/cache_tier.rs).

usage: cache_page_e2e.py URL OUT_DIR MIN_HITS

The page polls /v1/stats: it must show the database as ok, serving from memory, a hit ratio in
per cent, at least MIN_HITS hits in its counters, and a row per database feed, each ok; then a
screenshot cache-page.png. Prints the result as one JSON line; exits non-zero when a check fails.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from viewer_e2e import browser, check, js, wait_until  # noqa: E402


def shown(driver):
    return js(driver, """const t = id => (document.getElementById(id) || {}).innerText || '';
        const rows = [...document.querySelectorAll('#counters tr')].map(r => [...r.cells].map(c => c.innerText));
        const feeds = [...document.querySelectorAll('#feeds tr')].map(r => [...r.cells].map(c => c.innerText));
        return {ratio: t('ratio'), db: t('db'), serving: t('serving'), counters: Object.fromEntries(rows), feeds: feeds}""")


def main():
    url, out, min_hits = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    driver = browser(1280, 800)
    try:
        driver.get(url)
        wait_until(lambda: shown(driver)["db"] == "ok" and shown(driver)["serving"] == "yes", 20,
                   "the page never showed the database ok and serving from memory")
        page = shown(driver)
        check(page["ratio"].endswith("%"), f"hit ratio shown as {page['ratio']!r}")
        check(int(page["counters"].get("hits", "0")) >= min_hits, f"hits on the page: {page['counters']}")
        check(len(page["feeds"]) >= 1 and all(f[1] == "ok" for f in page["feeds"]), f"feeds: {page['feeds']}")
        driver.save_screenshot(os.path.join(out, "cache-page.png"))
    finally:
        driver.quit()
    print(json.dumps({"result": page}), flush=True)


if __name__ == "__main__":
    main()
