"""Independent discoveries on a local Dask cluster give exactly the serial results."""

from __future__ import annotations

import json
import pickle

import pandas as pd
import pytest

import circuitgraph as cg
from circuitgraph.cli import main
from circuitgraph.parallel import check_cluster, connect, run_many
from circuitgraph.prune.discovery import Discovery


@pytest.fixture(scope="module")
def client():
    with connect("local", workers=2) as client:
        yield client


def test_run_many_keeps_the_order(client):
    assert run_many(abs, [-3, 1, -2], client) == [3, 1, 2] == run_many(abs, [-3, 1, -2])


def test_stability_on_a_cluster_equals_serial(client, toy):
    task = cg.make_task("digits", toy, n=6, seed=0)
    for discover in (Discovery("toy-seq", threshold=0.8), Discovery("toy-seq", "edges", tau=0.05)):
        pickle.dumps(discover)  # what travels to the workers
        serial = cg.stability(task, discover, resamples=3, seed=1)
        spread = cg.stability(task, discover, resamples=3, seed=1, client=client)
        pd.testing.assert_series_equal(serial.frequency, spread.frequency)
        pd.testing.assert_frame_equal(serial.jaccard, spread.jaccard)
        assert serial.consensus(0.5) == spread.consensus(0.5)


def test_cli_stability_on_a_cluster_address(client, tmp_path, capsys):
    argv = ["stability", "--model", "toy-seq", "--task", "digits", "--n", "12"]
    argv += ["--resamples", "2", "-q"]
    address = client.scheduler.address  # the test's local cluster, reached by its address
    cluster = ["--cluster", address, "--out", str(tmp_path / "cluster")]
    assert main([*argv, *cluster]) == 0, capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "serial")]) == 0, capsys.readouterr().err
    run = "toy-seq/digits/stability-nodes-0.8-bootstrap-2"
    for name in ("frequency.csv", "jaccard.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "serial" / run / name),
            pd.read_csv(tmp_path / "cluster" / run / name),
        )
    record = json.loads((tmp_path / "cluster" / run / "run.json").read_text())
    assert record["subcommand"] == "stability"


def test_bad_cluster_addresses_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="scheduler address like tcp://host:8786"):
        check_cluster("my-cluster")
    argv = ["stability", "--model", "toy-seq", "--task", "digits", "--cluster", "nowhere"]
    assert main([*argv, "--out", str(tmp_path), "-q"]) == 2
    assert "scheduler address" in capsys.readouterr().err
    with pytest.raises(ValueError, match="method must be"):
        Discovery("toy-seq", method="magic")


def test_independent_sweep_on_a_cluster_equals_serial(client, toy):
    scorer = cg.Scorer(toy, cg.make_task("months", toy, n=6, seed=0))
    serial = cg.threshold_sweep(scorer, [0.9, 0.6], nested=False, order="forward", progress=False)
    spread = cg.threshold_sweep(scorer, [0.9, 0.6], False, client, order="forward")
    assert serial == spread  # same thresholds, same circuits
    with pytest.raises(ValueError, match="pass nested=False"):
        cg.threshold_sweep(scorer, [0.9, 0.6], client=client)


def test_cli_sweep_on_a_cluster_equals_serial(client, tmp_path, capsys):
    argv = ["sweep", "--model", "toy-seq", "--task", "digits", "--n", "6", "--independent"]
    argv += ["--thresholds", "0.9", "0.7", "--no-svg", "-q"]
    cluster = ["--cluster", client.scheduler.address, "--out", str(tmp_path / "c")]
    assert main([*argv, *cluster]) == 0, capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "s")]) == 0, capsys.readouterr().err
    run = "toy-seq/digits/sweep-0.9-0.7"
    for name in ("threshold_table.csv", "nodes-0.7/circuit.json"):
        assert (tmp_path / "c" / run / name).read_text() != ""
        if name.endswith(".csv"):
            pd.testing.assert_frame_equal(
                pd.read_csv(tmp_path / "s" / run / name), pd.read_csv(tmp_path / "c" / run / name)
            )
    nested = [a for a in argv if a != "--independent"]
    assert main([*nested, "--cluster", "local", "--out", str(tmp_path / "n")]) == 2
    assert "--cluster needs --independent" in capsys.readouterr().err
