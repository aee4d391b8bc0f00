"""The report of ``bench.big_data``: every process's peaks by phase, then upload and training.

``report(result)`` prints the table and summary lines from the result ``bench.big_data.run``
returns (the same result is printed as JSON afterwards).
"""

from __future__ import annotations

from typing import Any

from bench.bigdata.memory import MB

TARGET_MB = 500.0


def report(result: dict[str, Any]) -> None:
    config, up, train = result["config"], result["upload"], result["training"]
    print(
        f"\nbig data, {result['date']}: {config['rows']:,} x {config['features']} float32 "
        f"({result['dataset']['data_mb']:,.0f} MB), {config['params']['total_tasks']} shards "
        f"of {config['shard_rows']:,} rows ({config['shard_mb']:.1f} MB), "
        f"K={config['params']['task_size']}, {config['params']['passes']} pass(es), "
        f"{config['params']['epochs']} epoch(s), batch {config['params']['batch_size']}, "
        f"{config['providers']} providers, {result['machine']['cpus']} CPUs\n"
    )
    phases = list(result["phases_s"])
    header = (
        f"{'process':<38}{'peak RSS':>9}{'VmHWM':>7}{'anon':>6}{'file':>6}{'PSS':>6}"
        + "".join(f"{name:>9}" for name in phases)
        + f"{'CPU s':>7}  <{TARGET_MB:.0f}"
    )
    print(header)
    print("-" * len(header))
    for p in result["processes"]:
        by_phase = p["peak_by_phase_mb"]
        print(
            f"{p['label'][:37]:<38}{p['peak_rss_mb']:>9.0f}{p['hwm_mb']:>7.0f}"
            f"{p['peak_anon_mb']:>6.0f}{p['file_at_peak_mb']:>6.0f}{p['peak_pss_mb']:>6.0f}"
            + "".join(
                f"{'-' if by_phase[n] is None else format(by_phase[n], '.0f'):>9}" for n in phases
            )
            + f"{p['cpu_s']:>7.1f}  {'yes' if p['under_target'] else 'NO'}"
        )
    print(
        "(MB = 2**20 bytes. peak RSS: highest sampled VmRSS; VmHWM: the kernel's peak RSS; "
        "anon: peak RssAnon, private memory; file: file-backed RSS at the peak, mostly shared "
        "libraries; PSS: peak proportional set size (shared pages divided among the "
        "processes that map them); then the peak VmRSS in each phase; CPU s: user + system "
        "CPU seconds. "
        "Phases: "
        + ", ".join(
            f"{n} {a:.0f}-{'end' if b >= 1e9 else format(b, '.0f')} s"
            for n, (a, b) in result["phases_s"].items()
        )
        + ")"
    )
    over = [p for p in result["processes"] if not p["under_target"]]
    print(
        f"\n{len(result['processes']) - len(over)} of {len(result['processes'])} processes "
        f"under {TARGET_MB:.0f} MB"
        + (f"; over: {', '.join(p['label'] for p in over)}" if over else "")
    )
    if over:
        print(
            "  of those, private memory (anon) peaks: "
            + ", ".join(f"{p['label']} {p['peak_anon_mb']:.0f} MB" for p in over)
        )
    tf, child = result["tensorflow_alone"], result["training_child_analysis"]
    print(
        "\nTensorFlow alone, fresh process (MB): "
        + "; ".join(
            f"{stage} {values['VmRSS']:.0f} (anon {values['RssAnon']:.0f})"
            for stage, values in tf.items()
        )
    )
    if child["training_child_peak_mb"] is not None:
        print(
            f"training child peak {child['training_child_peak_mb']:.0f} MB = import tensorflow "
            f"{child['import_tensorflow_mb']:.0f} + plain-Keras fit of one shard "
            f"{child['plain_keras_same_fit_mb'] - child['import_tensorflow_mb']:.0f} + DAIG "
            f"{child['daig_over_plain_keras_mb']:+.0f}"
        )
    print(
        f"\nupload: {up['bytes'] / MB:,.0f} MB in {up['all_files_seconds']:.1f} s; the data file "
        f"{up['data_bytes'] / MB:,.0f} MB in {up['data_seconds']:.1f} s = "
        f"{up['data_mb_per_s']:.0f} MB/s (streamed, hashed, checked, stored)"
    )
    start, end = result["phases_s"]["upload"]
    busy = {
        p["label"]: p["cpu_by_phase_s"]["upload"]
        for p in result["processes"]
        if p["label"] in ("api", "requestor CLI: create --wait")
    }
    print(
        f"  CPU busy during the {end - start:.0f} s upload phase: "
        + ", ".join(
            f"{label} {cpu:.1f} s ({cpu / (end - start):.0%})" for label, cpu in busy.items()
        )
    )
    accuracy = train["final_evaluation"].get("accuracy")
    print(
        f"training: {train['seconds']:.1f} s, {train['rounds']} rounds (median "
        f"{train['round_wall_median_s']:.2f} s, fit median {train['fit_median_s']:.2f} s), "
        f"results {train['results']}\n  per round (median): "
        + ", ".join(f"{k} {v:.2f}" for k, v in train["per_round_median"].items())
        + f"\n  held-out accuracy after round 0: {train['accuracy_by_round'][0]}, "
        f"final: {accuracy}"
    )
    disk = result["disk"]
    print(
        f"disk: dataset {disk['dataset']:,.0f} MB, blob store {disk['blob_store']:,.0f} MB, "
        f"provider shard caches {disk['provider_shard_caches']:,.0f} MB; peak under the work "
        f"directory {disk['peak_under_work_dir_mb']:,.0f} MB (removed afterwards)"
    )
    print(
        f"CLI: create --start --wait {result['cli']['create_start_wait_seconds']:.1f} s, "
        f"download {result['cli']['download_seconds']:.1f} s"
    )
