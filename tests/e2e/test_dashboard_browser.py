"""The dashboard in a real headless Chromium against a running `acme serve`: every chart is
drawn (painted canvas) with exactly the API's numbers, the table beside it too; the as-of
picker moves every chart and the order timeline to the past; it fits a phone's width; and
the screenshots are not blank (copied to docs/screenshots/ for the README)."""

import shutil
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
REPORT_CARDS = ("top", "by-status", "products", "customers")
READ_CARD = """
const card = document.getElementById(arguments[0]);
const canvas = card.querySelector("canvas");
const chart = Chart.getChart(canvas);
const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let painted = 0;
for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
return {
  state: card.dataset.state, url: card.dataset.url || null, painted,
  labels: chart ? chart.data.labels : null,
  datasets: chart ? chart.data.datasets.map(d => ({label: d.label, data: d.data})) : null,
  header: [...card.querySelectorAll("thead th")].map(th => th.textContent),
  rows: [...card.querySelectorAll("tbody tr")].map(tr => [...tr.cells].map(td => td.textContent)),
};
"""


def label(value) -> str:
    return "(none)" if value is None else str(value)


def table_of(columns, rows) -> list[list[str]]:
    return [["" if row[c] is None else str(row[c]) for c in columns] for row in rows]


def read_card(driver, card: str) -> dict:
    return driver.execute_script(READ_CARD, card)


def wait_ready(driver, cards, url_has: str = "") -> None:
    WebDriverWait(driver, 30, 0.2).until(lambda d: all(
        (state := read_card(d, card))["state"] == "ready" and url_has in (state["url"] or "")
        for card in cards))


def assert_chart_equals_api(driver, client, card: str) -> dict:
    """The card's chart and table show exactly what the API answers for the URL it asked."""
    shown = read_card(driver, card)
    answer = client.get(shown["url"]).json()
    rows = answer["rows"]
    assert rows, f"{card}: nothing to compare"
    assert shown["painted"] > 2000, f"{card}: the chart's canvas is (nearly) empty"
    [values] = [d["data"] for d in shown["datasets"]] if card != "by-status" else [None]
    if card == "top":
        assert shown["labels"] == [label(r["delivery_date"]) for r in rows]
        assert values == [r["open_orders"] for r in rows]
    elif card == "products":
        rows = rows[:20]
        assert values == [r["total_quantity"] for r in rows]
        assert [f"#{r['product_id']})" in text for r, text in zip(rows, shown["labels"],
                                                                   strict=True)]
    elif card == "customers":
        assert values == [r["pending_orders"] for r in rows]
        assert all(f"#{r['customer_id']})" in text
                   for r, text in zip(rows, shown["labels"], strict=True))
    else:  # stacked by status: every (date, status, count) segment, and nothing else
        segments = {(date, d["label"], count) for d in shown["datasets"]
                    for date, count in zip(shown["labels"], d["data"], strict=True) if count}
        assert segments == {(label(r["delivery_date"]), label(r["status"]), r["open_orders"])
                            for r in rows}
    assert shown["header"] == answer["columns"]
    assert shown["rows"] == table_of(answer["columns"], rows)
    return answer


def assert_not_blank(path: Path) -> None:
    image = Image.open(path).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 24)
    background = max(colors)[0]
    pixels = image.width * image.height
    assert len(colors) > 50, f"{path}: only {len(colors)} colours"
    assert pixels - background > 0.05 * pixels, f"{path}: almost all one colour"


def set_viewport(driver, width: int, height: int, phone: bool = False) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone})
    # Charts redraw on resize in the next frames.
    driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")


def screenshot(driver, tmp_path: Path, name: str, width: int, phone: bool = False) -> Path:
    """The whole page at this width (the viewport grown to the page's height)."""
    set_viewport(driver, width, 900, phone)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    set_viewport(driver, width, height, phone)
    driver.execute_script("window.scrollTo(0, 0)")
    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    assert_not_blank(path)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENSHOTS / name)
    return path


def test_dashboard_charts_show_the_apis_numbers_now_and_as_of(served, source_db, browser,
                                                              tmp_path):
    client = served.client
    browser.get(served.url)
    wait_ready(browser, (*REPORT_CARDS, "lag"))
    now_answers = {card: assert_chart_equals_api(browser, client, card)
                   for card in REPORT_CARDS}
    lag = read_card(browser, "lag")
    assert [d["label"] for d in lag["datasets"]][0].startswith("lag")
    assert lag["painted"] > 500 and lag["rows"]

    browser.find_element(By.ID, "order-id").send_keys("1")
    browser.find_element(By.CSS_SELECTOR, "#order-form button").click()
    wait_ready(browser, ("order",))
    history = client.get("/analytics/orders/1/history").json()
    shown = read_card(browser, "order")
    assert [row[0] for row in shown["rows"]] == [v["status"] for v in history["versions"]]
    assert len(shown["datasets"][0]["data"]) == len(history["versions"])

    # A moment, then changes after it: the picker must bring every card back to the moment.
    moment = datetime.now(UTC).replace(microsecond=0)
    top_date = now_answers["top"]["rows"][0]["delivery_date"]
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO operations.orders (delivery_date, status, customer_id) "
                     "SELECT %s, 'PENDING', 1 FROM generate_series(1, 40)", (top_date,))
        conn.execute("UPDATE operations.orders SET status = 'ON HOLD' WHERE order_id = 1")
    WebDriverWait(browser, 30, 0.2).until(
        lambda d: len(client.get("/analytics/orders/1/history").json()["versions"])
        > len(history["versions"]))
    browser.execute_script(
        "const box = document.getElementById('asof'); box.value = arguments[0];"
        "box.dispatchEvent(new Event('change'));", moment.strftime("%Y-%m-%dT%H:%M:%S"))
    wait_ready(browser, REPORT_CARDS, url_has="as_of=")
    past = {card: assert_chart_equals_api(browser, client, card) for card in REPORT_CARDS}
    assert past["top"]["rows"] == now_answers["top"]["rows"]
    assert client.get("/analytics/orders/top?limit=10").json()["rows"] != past["top"]["rows"]
    WebDriverWait(browser, 10, 0.2).until(
        lambda d: len(read_card(d, "order")["rows"]) == len(history["versions"]))
    laptop = screenshot(browser, tmp_path, "dashboard-laptop.png", 1280)

    set_viewport(browser, 390, 844, phone=True)
    layout = browser.execute_script("""
        return {overflow: document.documentElement.scrollWidth - window.innerWidth,
                lefts: [...document.querySelectorAll('.card')].map(
                    c => Math.round(c.getBoundingClientRect().left))};""")
    assert layout["overflow"] <= 0, "the page scrolls sideways on a phone"
    assert len(set(layout["lefts"])) == 1, "cards should stack in one column on a phone"
    phone = screenshot(browser, tmp_path, "dashboard-phone.png", 390, phone=True)
    print(f"screenshots: {laptop}, {phone} (copied to {SCREENSHOTS})")
