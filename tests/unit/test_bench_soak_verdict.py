"""The soak bench's verdict on its memory readings (bench/soak.py): flat passes, growth fails."""

from __future__ import annotations

from bench.soak import verdict


def test_flat_readings_pass():
    readings = [(10_000, 60.0, {101: 128.0, 102: 127.5}), (50_000, 300.0, {101: 129.9, 102: 128.0}),
                (100_000, 600.0, {101: 140.7, 102: 140.2})]
    assert verdict(readings) == []


def test_growth_past_ten_percent_fails():
    readings = [(10_000, 60.0, {101: 128.0, 102: 127.5}), (100_000, 600.0, {101: 140.9, 102: 127.6})]
    (problem,) = verdict(readings)
    assert problem.startswith("worker 101 grew from 128.0 MB to 140.9 MB")


def test_a_worker_over_150_mb_fails_even_when_flat():
    readings = [(10_000, 60.0, {101: 150.5}), (100_000, 600.0, {101: 150.6})]
    assert verdict(readings) == ["worker 101 used 150.5 MB at 10,000 requests (limit 150 MB)",
                                 "worker 101 used 150.6 MB at 100,000 requests (limit 150 MB)"]


def test_a_restarted_worker_or_too_few_readings_fail():
    assert verdict([(10_000, 60.0, {101: 120.0})]) == [
        "fewer than two readings: the soak did not run long enough"]
    assert verdict([(10_000, 60.0, {101: 120.0}), (20_000, 120.0, {103: 120.0})]) == [
        "worker 103 was not there at 10,000 requests (a worker restarted)"]
