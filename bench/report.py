"""The results as markdown tables, ecsop's figures as ratios to the baselines', and targets."""

from __future__ import annotations

import math
from typing import Any

from bench import report_scale
from bench.figures import fig

TARGET_RSS_MIB = 200.0
TARGET_CPU_S = 2.0
TARGET_TRIGGER_P99_S = 1.0


def _ratio(ours: float, theirs: float) -> str:
    if not theirs or math.isnan(theirs) or math.isnan(ours):
        return "-"
    ratio = ours / theirs
    return f"{ratio:.2g}x" if ratio < 10 else f"{ratio:,.0f}x"


def markdown(results: dict[str, Any]) -> str:
    parts = [f"Run {results['started']} · {results['machine']} · `{results['command']}`", ""]
    if "trigger" in results:
        parts += _trigger(results["trigger"])
    if "rollback" in results:
        parts += _rollback(results["rollback"])
    if "steady" in results:
        parts += _steady(results["steady"])
    if "strategies" in results:
        parts += _strategies(results["strategies"])
    if "failover" in results:
        parts += _failover(results["failover"])
    parts += report_scale.markdown(results)
    if "budget" in results:
        parts += _budget(results["budget"])
    if "timestamps" in results:
        parts += _timestamps(results["timestamps"])
    parts += _targets(targets(results))
    return "\n".join(parts)


def _trigger(data: dict[str, Any]) -> list[str]:
    c = data["contenders"]
    ours = c["ecsop"]
    out = [
        f"### 1. Trigger latency: spec commit → UpdateService ({data['changes']} changes each, "
        "real seconds)",
        "",
        "| contender | how it notices | p50 | p95 | p99 | max | missed | ecsop p99 ÷ this p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("ecsop", "script", "naive"):
        row = c[name]
        out.append(
            f"| {name} | {row['how']} | {fig(row['p50_s'], 3)} | {fig(row['p95_s'], 3)} | "
            f"{fig(row['p99_s'], 3)} | {fig(row['max_s'], 3)} | {row['missed']} | "
            f"{_ratio(ours['p99_s'], row['p99_s']) if name != 'ecsop' else '1x'} |"
        )
    if "first_call_p50_s" in ours:
        out += [
            "",
            f"ecsop, file written → its first AWS call for the release: p50 "
            f"{fig(ours['first_call_p50_s'], 3)} s, p99 {fig(ours['first_call_p99_s'], 3)} s "
            "(the rest is the AWS calls of the deploy).",
        ]
    return [*out, ""]


def _rollback(data: dict[str, Any]) -> list[str]:
    c = data["contenders"]
    ours = c["ecsop"]
    out = [
        f"### 2. Rollback latency: first failed task visible → rollback UpdateService "
        f"({data['services']} failing deploys each, clock x{data['clock_speed']:g})",
        "",
        "| contender | polls every (sim s) | sim p50 | sim p95 | sim max | real p50 | real p95 | "
        "real max | within one poll | ECS calls / deploy | AWS calls / deploy | "
        "ecsop p95 ÷ this p95 (sim) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = [n for n in ("ecsop", "events", "script", "naive") if n in c]
    for name in names:
        row = c[name]
        ecs_calls = row.get("ecs_calls", sum(row["calls"].values()))
        out.append(
            f"| {LABELS.get(name, name)} | {fig(row['poll_interval_sim_s'], 0)} | "
            f"{fig(row['sim_p50_s'])} | "
            f"{fig(row['sim_p95_s'])} | {fig(row['sim_max_s'])} | {fig(row['real_p50_s'], 3)} | "
            f"{fig(row['real_p95_s'], 3)} | {fig(row['real_max_s'], 3)} | "
            f"{row['within_one_poll']}/{row['samples'] + row['missed']} | "
            f"{fig(ecs_calls / data['services'], 1)} | "
            f"{fig(sum(row['calls'].values()) / data['services'], 1)} | "
            f"{_ratio(ours['sim_p95_s'], row['sim_p95_s']) if name != 'ecsop' else '1x'} |"
        )
    out += [
        "",
        "Calls / deploy: every call the contender made from its first bad deploy until "
        "the last rollback, per deploy (ecsop's include its resyncs and active polls; "
        "the events contender's AWS calls include its SQS calls).",
    ]
    idle = {name: c[name]["idle"] for name in names if "idle" in c[name]}
    if idle:
        out += [
            "",
            "#### 2b. ecsop at rest: AWS calls per hour (20 services, every release rolled back)",
            "",
            "| contender | ECS / h | SQS / h | total / h | measured over (real s) |",
            "|---|---|---|---|---|",
        ]
        for name, row in idle.items():
            out.append(
                f"| {LABELS.get(name, name)} | {fig(row['ecs_per_hour'], 0)} | "
                f"{fig(row['sqs_per_hour'], 0)} | {fig(row['total_per_hour'], 0)} | "
                f"{fig(row['window_real_s'], 0)} |"
            )
        out += [
            "",
            "ECS calls per simulated hour (the resync's intervals are simulated seconds); "
            "SQS calls per real hour (a long poll waits 20 real seconds).",
        ]
    return [*out, ""]


def _strategies(data: dict[str, Any]) -> list[str]:
    rows = data["rows"]
    rolling = rows["rolling"]["ecsop_restore_p50_s"]

    def comparable(key: str, row: dict[str, Any]) -> bool:
        """Another strategy on services that start as slowly as the rolling row's."""
        return key != "rolling" and row["start_seconds"] == rows["rolling"]["start_seconds"]

    out = [
        "### 5. Time to restore by strategy: the same bad release "
        f"({data['services_per_strategy']} service(s) each, clock x{data['clock_speed']:g}, "
        "simulated seconds)",
        "",
        "| strategy | tasks serve after | time to restore p50 (ecsop) | max | "
        "production restored p50 (client) | bad version: 100%-seconds p50 | "
        "production requests it answered | rolling p50 ÷ this p50 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, row in rows.items():
        out.append(
            f"| {key} | {fig(row['start_seconds'], 0)} s | {fig(row['ecsop_restore_p50_s'], 1)} | "
            f"{fig(row['ecsop_restore_max_s'], 1)} | {fig(row['production_restore_p50_s'], 1)} | "
            f"{fig(row['bad_weight_time_p50_s'], 1)} | "
            f"{row['bad_production_answers']}/{row['production_answers']} | "
            f"{_ratio(rolling, row['ecsop_restore_p50_s']) if comparable(key, row) else '-'} |"
        )
    out += [
        "",
        "Time to restore (ecsop): `ecsop_time_to_restore_seconds`, from the pass that saw the "
        "failure to the first that saw production fully on last-good (AWS's clock). Production "
        "restored (client): from that pass to the last production request the bad version "
        "answered. 100%-seconds: requests it answered x the request interval, i.e. production "
        "weight x time. Rolling rollback waits for last-good's tasks to start again; blue/green "
        "and canary send production back to blue, still running.",
    ]
    return [*out, ""]
LABELS = {
    "ecsop": "ecsop (polling, 5 s)",
    "events": "ecsop --events-queue (poll 30 s)",
}


def _steady(data: dict[str, Any]) -> list[str]:
    out = [
        "### 3. Steady-state AWS API cost per resync (per pass for the baselines)",
        "",
        "| N | contender | DescribeServices | DescribeTaskDefinition | other | total | "
        "budget ⌈N/10⌉ | ecsop total ÷ this |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size, row in data["sizes"].items():
        ours = row["ecsop"]
        for name in ("ecsop", "naive", "script"):
            r = row[name]
            calls = r["calls_per_resync"]
            ds = calls.get("DescribeServices", 0.0)
            dtd = calls.get("DescribeTaskDefinition", 0.0)
            other = r["calls_total_per_resync"] - ds - dtd
            out.append(
                f"| {int(size):,} | {name} | {fig(ds, 1)} | {fig(dtd, 1)} | {fig(other, 1)} | "
                f"{fig(r['calls_total_per_resync'], 1)} | "
                f"{ours['describe_services_budget'] if name == 'ecsop' else ''} | "
                f"{_ratio(ours['calls_total_per_resync'], r['calls_total_per_resync']) if name != 'ecsop' else '1x'} |"  # noqa: E501
            )
    out += [
        "",
        "### 4. Scale: the measured process's own CPU and memory per resync (per pass)",
        "",
        "| N | contender | CPU s / resync | full resync s | peak RSS MiB | "
        "ecsop CPU ÷ this | ecsop RSS ÷ this |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, row in data["sizes"].items():
        ours = row["ecsop"]
        for name in ("ecsop", "naive", "script"):
            r = row[name]
            out.append(
                f"| {int(size):,} | {name} | {fig(r['cpu_s_per_resync'], 3)} | "
                f"{fig(r['full_resync_s'], 2)} | {fig(r['peak_rss_mib'], 0)} | "
                f"{_ratio(ours['cpu_s_per_resync'], r['cpu_s_per_resync']) if name != 'ecsop' else ''} | "  # noqa: E501
                f"{_ratio(ours['peak_rss_mib'], r['peak_rss_mib']) if name != 'ecsop' else ''} |"
            )
    return [*out, ""]


def _failover(data: dict[str, Any]) -> list[str]:
    over = data["failover"]
    lease, deadline, retry = over["lease_flags_s"]
    out = [
        f"### 5. Several replicas: kill -9 of a shard owner → the new owner's first AWS call "
        f"for that shard ({over['shards_moved']} shards moved in {over['trials']} kills; "
        f"lease {lease:g} s, renew deadline {deadline:g} s, retry period {retry:g} s)",
        "",
        "| p50 s | p99 s | max s | bound: lease + 2 rounds (s) |",
        "|---|---|---|---|",
        f"| {fig(over['p50_s'])} | {fig(over['p99_s'])} | {fig(over['max_s'])} | "
        f"{fig(lease + 2 * retry * 1.2)} |",
        "",
        f"AWS calls per resync ({data['cost']['services']} steady services, resync "
        f"{data['cost']['resync_s']:g} s; 8 shards with coordination):",
        "",
        "| replicas | DescribeServices | other ECS | ECS total | budget ⌈N/10⌉ "
        "| DynamoDB calls/s |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in data["cost"]["rows"].items():
        calls = row["ecs_calls_per_resync"]
        ds = calls.get("DescribeServices", 0.0)
        out.append(
            f"| {label} | {fig(ds, 1)} | {fig(row['ecs_total_per_resync'] - ds, 1)} | "
            f"{fig(row['ecs_total_per_resync'], 1)} | {row['describe_services_budget']} | "
            f"{fig(row['dynamodb_calls_per_s'], 1)} |"
        )
    return [*out, ""]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if "failover" in results:
        over = results["failover"]["failover"]
        lease, _, retry = over["lease_flags_s"]
        bound = lease + 2 * retry * 1.2
        out.append(
            {
                "target": f"a dead owner's shards reconciled within lease + 2 rounds ({bound:g} s)",
                "measured": f"max {fig(over['max_s'])} s, p99 {fig(over['p99_s'])} s",
                "met": over["max_s"] <= bound,
            }
        )
        rows = results["failover"]["cost"]["rows"]
        for label, row in rows.items():
            budget = row["describe_services_budget"] + row["replicas"]
            out.append(
                {
                    "target": f"{label} replica(s): ECS calls per resync ≤ ⌈N/10⌉ + replicas "
                    f"({budget})",
                    "measured": f"{fig(row['ecs_total_per_resync'], 1)}",
                    "met": row["ecs_total_per_resync"] <= budget,
                }
            )
    if "trigger" in results:
        p99 = results["trigger"]["contenders"]["ecsop"]["p99_s"]
        missed = results["trigger"]["contenders"]["ecsop"]["missed"]
        out.append(
            {
                "target": "trigger latency p99 < 1 s",
                "measured": f"p99 {fig(p99, 3)} s, {missed} missed",
                "met": p99 < TARGET_TRIGGER_P99_S and missed == 0,
            }
        )
    if "rollback" in results:
        contenders = results["rollback"]["contenders"]
        row = contenders["ecsop"]
        total = row["samples"] + row["missed"]
        out.append(
            {
                "target": "rollback within one active-poll interval "
                f"({fig(row['poll_interval_sim_s'], 0)} sim s) of the first failure",
                "measured": f"{row['within_one_poll']}/{total}; max {fig(row['sim_max_s'])} sim s",
                "met": total > 0 and row["within_one_poll"] == total,
            }
        )
        events = contenders.get("events")
        if events is not None:
            ratio = row["sim_p95_s"] / events["sim_p95_s"] if events["sim_p95_s"] else math.inf
            out.append(
                {
                    "target": "with --events-queue: rollback p95 at least 5x better than the "
                    "5 s poll's",
                    "measured": f"p95 {fig(events['sim_p95_s'])} vs {fig(row['sim_p95_s'])} sim s "
                    f"({ratio:.1f}x), {events['missed']} missed",
                    "met": ratio >= 5 and events["missed"] == 0,
                }
            )
            ours, theirs = events["ecs_calls"], row["ecs_calls"]
            out.append(
                {
                    "target": "with --events-queue: fewer ECS calls per rollout than the 5 s poll",
                    "measured": f"{fig(ours / results['rollback']['services'], 1)} vs "
                    f"{fig(theirs / results['rollback']['services'], 1)} per deploy",
                    "met": ours < theirs,
                }
            )
    if "strategies" in results:
        data = results["strategies"]
        rows, poll = data["rows"], data["active_poll_sim_s"]
        blue_green = rows["blueGreen"]
        out.append(
            {
                "target": f"blue/green restores within one active poll ({fig(poll, 0)} sim s)",
                "measured": f"max {fig(blue_green['ecsop_restore_max_s'], 1)} sim s",
                "met": blue_green["ecsop_restore_max_s"] <= poll,
            }
        )
        ratio = rows["rolling"]["ecsop_restore_p50_s"] / max(
            blue_green["ecsop_restore_p50_s"], 1e-9
        )
        out.append(
            {
                "target": "blue/green restores ≥ 10x faster than a rolling rollback "
                f"(tasks serving {fig(rows['rolling']['start_seconds'], 0)} s after RUNNING)",
                "measured": f"{fig(ratio, 1)}x",
                "met": ratio >= 10,
            }
        )
    if "steady" in results:
        for size, row in results["steady"]["sizes"].items():
            ours = row["ecsop"]
            calls = ours["calls_per_resync"]
            ds = calls.get("DescribeServices", 0.0)
            dtd = calls.get("DescribeTaskDefinition", 0.0)
            out.append(
                {
                    "target": f"N={int(size):,}: ≤ ⌈N/10⌉ = {ours['describe_services_budget']} "
                    "DescribeServices and 0 DescribeTaskDefinition per resync",
                    "measured": f"{fig(ds, 1)} and {fig(dtd, 1)}",
                    "met": ds <= ours["describe_services_budget"] and dtd == 0,
                }
            )
            if int(size) == 1000:
                out.append(
                    {
                        "target": "N=1,000: peak RSS < 200 MB",
                        "measured": f"{fig(ours['peak_rss_mib'], 0)} MiB",
                        "met": ours["peak_rss_mib"] * 1.048576 < TARGET_RSS_MIB,
                    }
                )
                out.append(
                    {
                        "target": "N=1,000: CPU of a full resync < 2 s (daemon only)",
                        "measured": f"{fig(ours['cpu_s_per_resync'], 3)} s",
                        "met": ours["cpu_s_per_resync"] < TARGET_CPU_S,
                    }
                )
    out += report_scale.targets(results)
    if "budget" in results:
        out += _budget_targets(results["budget"])
    if "timestamps" in results:
        rows = results["timestamps"]["rows"]
        speedup = rows["botocore"]["ms_per_answer"] / rows["ecsop"]["ms_per_answer"]
        out.append(
            {
                "target": "timestamp parsing: faster than botocore's, same instants",
                "measured": f"{fig(speedup, 1)}x, same: {results['timestamps']['same_instants']}",
                "met": speedup > 1 and results["timestamps"]["same_instants"],
            }
        )
    return out


def _targets(rows: list[dict[str, Any]]) -> list[str]:
    out = ["### Targets", "", "| target | measured | met |", "|---|---|---|"]
    for row in rows:
        out.append(f"| {row['target']} | {row['measured']} | {'yes' if row['met'] else '**no**'} |")
    return [*out, ""]


# --- scenario 7: within ECS's API budget (bench/budget.py) ---------------------------------


def _budget(data: dict[str, Any]) -> list[str]:
    sizes = data["sizes"]
    out = [
        "### 7. Within ECS's API budget: the sandbox throttling at ECS's documented rates",
        "",
        f"Resync {fig(data['resync_s'], 0)} s, active poll {fig(data['active_poll_s'], 0)} s; "
        + "; ".join(f"`{name}`: `{flags}`" for name, flags in data["contenders"].items())
        + ". ⌈N/10⌉: the fewest DescribeServices that observe N releases.",
        "",
        "**First pass** (start → every release reconciled once) **and steady state**",
        "",
        "| N | contender | first pass: DescribeServices (⌈N/10⌉) | of them single "
        "| of them naming only services already described | calls "
        "| throttled | time s | steady: calls/s | DescribeServices/s | throttled "
        "| effective interval s (reported / seen) | CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, row in sizes.items():
        for name, c in row.items():
            first, steady = c["first_pass"], c["steady"]
            reported = steady["reported"]["effectiveSeconds"]
            out.append(
                f"| {int(size):,} | {name} | {first['describe_services']:,} "
                f"({math.ceil(int(size) / 10):,}) | {first['describe_services_single']:,} "
                f"| {first.get('describe_services_again', '-')} "
                f"| {first['calls']:,} | {first['throttled']:,} "
                f"({fig(100 * first['throttled_share'], 1)} %) | {fig(first['seconds'], 1)} "
                f"| {fig(steady['calls_per_s'], 2)} | {fig(steady['describe_services_per_s'], 2)} "
                f"| {steady['throttled']:,} ({fig(100 * steady['throttled_share'], 1)} %) "
                f"| {fig(reported, 1)} / {fig(steady['observed_interval_s'], 1)} "
                f"| {fig(100 * steady['cpu_s_per_s'], 1)} |"
            )
    out += [
        "",
        f"**Trigger latency** (single spec changes, {data['changes']} per contender, "
        "file written → UpdateService, real seconds) **and "
        f"{data['rollouts']} rollouts in progress** (polled every "
        f"{fig(data['active_poll_s'], 0)} s)",
        "",
        "| N | contender | trigger p50 | p99 | max | missed | rollouts started in s "
        "| throttled while starting | polling: DescribeServices/s for the rollouts "
        "| services per such call | all calls/s | throttled |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, row in sizes.items():
        for name, c in row.items():
            t, r = c["trigger"], c["rollouts"]
            window = r["window"]
            out.append(
                f"| {int(size):,} | {name} | {fig(t['p50_s'], 3)} | {fig(t['p99_s'], 3)} "
                f"| {fig(t['max_s'], 3)} | {t['missed']} | {fig(r['all_started_s'], 1)} "
                f"| {r['start_span']['throttled']:,} | {fig(r['rollout_describes_per_s'], 2)} "
                f"| {fig(r['services_per_rollout_describe'], 1)} | {fig(window['calls_per_s'], 2)} "
                f"| {window['throttled']:,} |"
            )
    return [*out, ""]


def _budget_targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for size, row in data["sizes"].items():
        if "paced" not in row:
            continue
        paced = row["paced"]
        first, steady = paced["first_pass"], paced["steady"]
        bound = math.ceil(int(size) / 10)
        again = int(first.get("describe_services_again", 0))
        out.append(
            {
                "target": f"N={int(size):,}: first pass ≤ ⌈N/10⌉ = {bound:,} DescribeServices, "
                "none of one service",
                "measured": f"{first['describe_services'] - again:,} describing a service "
                f"for the first time, {first['describe_services_single']:,} single "
                f"({again:,} more named only services already described: the next resync)",
                "met": first["describe_services"] - again <= bound
                and first["describe_services_single"] == 0,
            }
        )
        out.append(
            {
                "target": f"N={int(size):,}: throttled calls ≤ 1 % at startup, 0 in steady state",
                "measured": f"{fig(100 * first['throttled_share'], 2)} %, {steady['throttled']}",
                "met": first["throttled_share"] <= 0.01 and steady["throttled"] == 0,
            }
        )
        rollouts = paced["rollouts"]
        out.append(
            {
                "target": f"N={int(size):,}: {data['rollouts']} rollouts polled ten per "
                "DescribeServices",
                "measured": f"{fig(rollouts['services_per_rollout_describe'], 1)} per call",
                "met": rollouts["services_per_rollout_describe"] >= 9.0,
            }
        )
        if int(size) >= 10000:
            out.append(
                {
                    "target": f"N={int(size):,}: a single change reaches UpdateService "
                    "in < 0.3 s (p50)",
                    "measured": f"p50 {fig(paced['trigger']['p50_s'], 3)} s, "
                    f"p99 {fig(paced['trigger']['p99_s'], 3)} s",
                    "met": paced["trigger"]["p50_s"] < 0.3,
                }
            )
    return out


# --- scenario 8: timestamp parsing (bench/timestamps.py) -----------------------------------


def _timestamps(data: dict[str, Any]) -> list[str]:
    rows = data["rows"]
    stock = rows["botocore"]["ms_per_answer"]
    out = [
        "### 8. Timestamp parsing: one DescribeServices answer of 10 services "
        f"({data['timestamps_per_answer']:,} timestamps)",
        "",
        "| parser | ms per answer | s per resync of 10,000 releases | datetimes in | "
        "botocore ÷ this |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        out.append(
            f"| {name} | {fig(row['ms_per_answer'], 2)} | {fig(row['s_per_10k_resync'], 1)} "
            f"| {row['tz']} | {_ratio(stock, row['ms_per_answer'])} |"
        )
    out.append("")
    out.append(f"Every timestamp read as the same instant by both: {data['same_instants']}.")
    return [*out, ""]
