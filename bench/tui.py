"""How the TUI copes with a big database: 10,000 runs and 1,000,000 metric points; and how
fast a chart of a 1,000,000-point series draws.

Seeds a temporary database with fast `executemany` inserts, then drives the app headless and
prints: time from app start to a populated runs table, time to apply each kind of filter, and
the process's memory; then the chart's draw time in each mode. Goals: populated table <= 1 s,
filter <= 100 ms, chart draw <= 100 ms.

Grouping 10,000 runs (3-seed sweeps, `sweep:<id>` tags): the store's read plus the Python fold
(engine.core.grouping) for each grouping, the same by-sweep means in one SQL `group by` for
comparison, and the app from `g` to a filled groups table. Goal: <= 200 ms.

    .venv/bin/python bench/tui.py [--runs 10000] [--points 1000000] [--keep DIR]
                                  [--chart-points 1000000] [--chart-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from textual.app import App

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core.spec import KINDS, RunSpec  # noqa: E402
from engine.core.store import RunStore  # noqa: E402
from tui.app import ReasonlabApp  # noqa: E402
from engine.core.store import RunFilter, sort_expression  # noqa: E402
from tui.screens.runs import PAGE_SIZE  # noqa: E402
from tui.widgets.runs_table import RunsTable  # noqa: E402
from tui.chart_math import ChartOptions, RunScale, Series  # noqa: E402
from tui.widgets.metric_chart import MetricChart  # noqa: E402
from engine.core.grouping import group_runs  # noqa: E402
from tui.widgets.groups_table import GroupsTable  # noqa: E402

STATUSES = ("completed", "completed", "completed", "failed", "cancelled", "queued")
TAGS = ("baseline", "rft", "ablation", "lr-sweep", "keep")
START_GOAL_S = 1.0
FILTER_GOAL_S = 0.1
CHART_GOAL_S = 0.1
GROUPING_GOAL_S = 0.2
GROUPING_COLUMNS = ["kind", "status", "accuracy", "loss", "setting:learning_rate", "metric:answer_rate"]
"""What a grouped table summarises: the fixed columns a group shows, a setting and a metric."""
GROUPING_METRICS = {"accuracy", "loss", "metric:answer_rate"}


def seed(db_path: Path, runs: int, points: int) -> None:
    store = RunStore(db_path)
    rng = random.Random(0)
    specs = {kind: RunSpec(kind=kind).to_json() for kind in KINDS}
    t0 = 1_767_225_600.0
    rows = []
    for i in range(1, runs + 1):
        kind = rng.choice(KINDS)
        status = rng.choice(STATUSES)
        started = None if status == "queued" else t0 + i * 60
        summary = {} if status == "queued" else {"loss": rng.uniform(0.2, 2), "accuracy": rng.random()}
        rows.append((
            i, kind, f"{kind}-run-{i}", status, specs[kind], "smollm2-135m", t0 + i * 60, started,
            None if started is None else started + rng.uniform(10, 5000),
            json.dumps(rng.sample(TAGS, rng.randint(0, 2))), json.dumps(summary),
            str(store.runs_root / str(i)), 100, 100,
        ))
    with store.transaction():
        store.db.conn.executemany(
            "insert into runs (id, kind, name, status, spec, model, created_at, started_at, finished_at,"
            " tags, summary, run_dir, progress_done, progress_total) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    per_run = max(1, points // runs)
    batch = []
    with store.transaction():
        for i in range(1, runs + 1):
            for step in range(per_run):
                batch.append((i, step, "loss", 2.0 / (step + 1), t0))
            if len(batch) >= 100_000:
                store.db.conn.executemany("insert into metrics (run_id, step, name, value, time) values (?,?,?,?,?)", batch)
                batch.clear()
        store.db.conn.executemany("insert into metrics (run_id, step, name, value, time) values (?,?,?,?,?)", batch)
    store.close()


async def wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the runs table did not update")
        await asyncio.sleep(0.001)


async def measure(db_path: Path) -> dict[str, float]:
    results: dict[str, float] = {}
    start = time.perf_counter()
    app = ReasonlabApp(db_path, poll_interval=3600)  # no background refresh during timings
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.screen.query(RunsTable) and app.screen.query_one(RunsTable).row_count > 0)
        results["start_to_table_s"] = time.perf_counter() - start
        await pilot.pause()
        screen = app.screen
        table = screen.query_one(RunsTable)
        filters = {
            "kind=sft": {"kind": "sft"},
            "status=failed": {"status": "failed"},
            "tag=rft": {"tag": "rft"},
            "search 'run-99'": {"search": "run-99"},
            "kind+status+tag": {"kind": "eval", "status": "completed", "tag": "keep"},
            "sort by accuracy": None,
        }
        for label, spec in filters.items():
            timings = []
            for _ in range(5):
                before = table.run_ids
                t = time.perf_counter()
                if spec is None:
                    screen.sort_by("accuracy", toggle=True)
                else:
                    screen.apply_filter(RunFilter(**spec))
                await wait_until(lambda: table.run_ids != before and not screen._loading)
                timings.append(time.perf_counter() - t)
                screen.apply_filter(RunFilter())
                await wait_until(lambda: not screen._loading and len(table.run_ids) == min(PAGE_SIZE, screen.page.total))
            results[f"filter {label} s"] = statistics.median(timings)
        results["shown_rows"] = len(table.run_ids)
        results["rss_mb"] = psutil.Process().memory_info().rss / 2**20
    return results


class OneChart(App):
    """One chart the size of the run screen's first chart at 160×45 (full width, 22 rows)."""

    CSS = "MetricChart { height: 22; }"

    def __init__(self, series: Series) -> None:
        super().__init__()
        self.series = series

    def compose(self):
        chart = MetricChart("loss")
        chart.series[""] = self.series
        yield chart


async def measure_chart(points: int) -> dict[str, float]:
    """Draw a series of `points` points end to end, as the screens do (x transform, smoothing,
    log filter, min/max thinning, plotext's canvas, Textual's text of it), in each mode, next
    to a 1,000-point series drawn the same way: the difference is what the length costs. The
    rows-to-columns step runs in the screens' reading thread and is timed apart."""
    rng = np.random.default_rng(0)
    steps = np.arange(points, dtype=float)
    values = 0.5 + 2.0 / (1 + steps / 1000) + rng.normal(0, 0.05, points)
    rows = list(zip(steps.tolist(), values.tolist(), (1_767_225_600.0 + steps * 0.5).tolist()))
    scale = RunScale(started_at=1_767_225_600.0, samples_per_step=32, final_step=points)
    t = time.perf_counter()
    long = Series.of(rows, scale)
    results = {"chart rows to columns (reader thread) s": time.perf_counter() - t}
    thin = slice(None, None, max(1, points // 1000))
    short = Series(long.steps[thin], long.values[thin], long.times[thin], scale)
    modes = {
        "step": ChartOptions(),
        "smoothed": ChartOptions(smoothing=True),
        "wall time, log y": ChartOptions(x_axis="time", log_y=True),
        "smoothed, cursor": ChartOptions(smoothing=True, cursor=points / 2),
    }
    for series in (long, short):
        app = OneChart(series)
        async with app.run_test(size=(160, 45)) as pilot:
            await pilot.pause()
            chart = app.query_one(MetricChart)
            console = app.console
            for label, options in modes.items():
                timings, cpu = [], []
                for _ in range(5):
                    t, c = time.perf_counter(), time.process_time()
                    chart.set_options(options)
                    for part in (chart.plot, chart.query_one(".chart-values")):
                        console.render_lines(part.render(), console.options.update_width(part.size.width))
                    timings.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                results[f"chart draw {len(series):,} points, {label} s"] = statistics.median(timings)
                results[f"chart draw {len(series):,} points, {label}, CPU time s"] = statistics.median(cpu)
    results["load average (1 min)"] = psutil.getloadavg()[0]
    results["cpu cores"] = psutil.cpu_count()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="seed into this folder and keep it")
    parser.add_argument("--chart-points", type=int, default=1_000_000, help="points in the drawn chart series")
    parser.add_argument("--chart-only", action="store_true", help="only draw the chart (no database)")
    parser.add_argument("--grouping-only", action="store_true", help="measure only the grouping of runs")
    args = parser.parse_args()
    if args.chart_only:
        report(asyncio.run(measure_chart(args.chart_points)))
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="reasonlab-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    if not args.grouping_only:
        table_section(folder, args.runs, args.points, args.chart_points)
    grouping_section(folder, args.runs)


def table_section(folder: Path, runs: int, points: int, chart_points: int) -> None:
    db_path = folder / "runs.db"
    if not db_path.exists():
        t = time.perf_counter()
        seed(db_path, runs, points)
        print(f"seeded {runs} runs, {points} metric points in {time.perf_counter() - t:.1f} s ({db_path})")
    results = asyncio.run(measure(db_path))
    results |= asyncio.run(measure_chart(chart_points))
    report(results)


def report(results: dict[str, float]) -> None:
    for name, value in results.items():
        goal = (
            START_GOAL_S if name == "start_to_table_s" else FILTER_GOAL_S if name.startswith("filter")
            else CHART_GOAL_S if name.startswith("chart draw") else None
        )
        verdict = "" if goal is None else ("  ok" if value <= goal else f"  OVER {goal:g} s goal")
        shown = f"{value * 1000:.0f} ms" if name.endswith(" s") or name.endswith("_s") else f"{value:g}"
        print(f"{name:<32} {shown}{verdict}")


def seed_sweeps(db_path: Path, runs: int) -> None:
    """`runs` completed SFT runs in 3-seed sweeps over four learning rates, each with a
    distinct spec (its name), accuracy, loss and answer rate."""
    store = RunStore(db_path)
    rng = random.Random(1)
    t0 = 1_767_225_600.0
    rows = []
    for i in range(1, runs + 1):
        sweep, seed_value = divmod(i - 1, 3)
        lr = (5e-4, 1e-3, 2e-3, 4e-3)[sweep % 4]
        spec = RunSpec(kind="sft", name=f"sweep {sweep} seed {seed_value}", learning_rate=lr, seed=seed_value)
        summary = {"accuracy": rng.uniform(0.5, 0.9), "loss": rng.uniform(0.2, 2), "answer_rate": rng.random()}
        rows.append((
            i, "sft", spec.name, "completed", spec.to_json(), spec.model, t0 + i, t0 + i, t0 + i + 600,
            json.dumps([f"sweep:{sweep}", rng.choice(TAGS)]), json.dumps(summary), str(store.runs_root / str(i)),
        ))
    with store.transaction():
        store.db.conn.executemany(
            "insert into runs (id, kind, name, status, spec, model, created_at, started_at, finished_at,"
            " tags, summary, run_dir) values (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    store.close()


SQL_SWEEP_GROUPS = (
    "select sweep, group_concat(id), {aggregates} from (select"
    " (select min(value) from json_each(tags) where substr(value, 1, 6) = 'sweep:') as sweep, id, {values}"
    " from runs) group by sweep"
)
"""The by-sweep groups folded in SQL instead: run ids, and per metric its count, mean and mean
square (SQLite has no std), per other column its distinct count and one value."""


def sql_sweep_groups() -> str:
    values = ", ".join(f"{sort_expression(key)} as c{i}" for i, key in enumerate(GROUPING_COLUMNS))
    aggregates = ", ".join(
        f"count(c{i}), avg(c{i}), avg(c{i} * c{i})" if key in GROUPING_METRICS else f"count(distinct c{i}), min(c{i})"
        for i, key in enumerate(GROUPING_COLUMNS)
    )
    return SQL_SWEEP_GROUPS.format(values=values, aggregates=aggregates)


def time_grouping(db_path: Path) -> dict[str, float]:
    """Median seconds of the store's read and the fold for each grouping, and of the SQL-only means."""
    results: dict[str, float] = {}
    store = RunStore(db_path)
    metrics = GROUPING_METRICS
    for grouping in ("sweep", "tag", "setting:learning_rate", "setting:lora_alpha"):
        reads, folds = [], []
        for _ in range(5):
            t = time.perf_counter()
            rows = store.group_rows(RunFilter(), grouping, GROUPING_COLUMNS)
            reads.append(time.perf_counter() - t)
            t = time.perf_counter()
            grouped = group_runs(rows, GROUPING_COLUMNS, metrics, first=PAGE_SIZE)
            folds.append(time.perf_counter() - t)
        read, fold = statistics.median(reads), statistics.median(folds)
        results[f"group by {grouping} ({grouped.count} groups) s"] = read + fold
        results[f"  {grouping}: store read s"] = read
        results[f"  {grouping}: Python fold s"] = fold
    scans = []
    for _ in range(5):
        t = time.perf_counter()
        store.db.execute("select id from runs").fetchall()
        scans.append(time.perf_counter() - t)
    results["reference: read the 10,000 ids alone s"] = statistics.median(scans)
    sql = []
    for _ in range(5):
        t = time.perf_counter()
        store.db.execute(sql_sweep_groups()).fetchall()
        sql.append(time.perf_counter() - t)
    results["the same by sweep folded in SQL s"] = statistics.median(sql)
    store.close()
    return results


async def time_grouping_in_app(db_path: Path) -> dict[str, float]:
    """Seconds from choosing a grouping to a filled groups table, in the app."""
    app = ReasonlabApp(db_path, poll_interval=3600)
    results: dict[str, float] = {}
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_until(lambda: app.screen.query(RunsTable) and app.screen.query_one(RunsTable).row_count > 0)
        await pilot.pause()
        screen = app.screen
        groups = screen.query_one(GroupsTable)
        for grouping in ("sweep", "setting:learning_rate"):
            timings = []
            for _ in range(3):
                t = time.perf_counter()
                screen._set_grouping(grouping)
                await wait_until(lambda: groups.row_count > 0 and groups.grouping == grouping and not screen._loading)
                timings.append(time.perf_counter() - t)
                screen._set_grouping("none")
                await wait_until(lambda: groups.row_count == 0 or not groups.display)
                groups.clear()
                await wait_until(lambda: not screen._loading)
            results[f"app: g by {grouping} to table s"] = statistics.median(timings)
    return results


def print_results(results: dict[str, float]) -> None:
    for name, value in results.items():
        goal = GROUPING_GOAL_S if name.startswith(("group by", "app:")) else None
        verdict = "" if goal is None else ("  ok" if value <= goal else f"  OVER {goal:g} s goal")
        print(f"{name:<44} {value * 1000:.1f} ms{verdict}")


def grouping_section(folder: Path, runs: int) -> None:
    db_path = folder / "grouping.db"
    if not db_path.exists():
        t = time.perf_counter()
        seed_sweeps(db_path, runs)
        print(f"seeded {runs} runs in 3-seed sweeps in {time.perf_counter() - t:.1f} s ({db_path})")
    print_results(time_grouping(db_path))
    print_results(asyncio.run(time_grouping_in_app(db_path)))


if __name__ == "__main__":
    main()
