"""The lag clock: seconds behind = age of the newest source position the warehouse reached."""

from acme.observe.lag import LagClock


def test_caught_up_is_zero_even_when_the_source_keeps_writing():
    clock = LagClock()
    assert clock.seconds_behind(100.0, source_lsn=1000, confirmed_lsn=1000) == 0.0
    assert clock.seconds_behind(101.0, source_lsn=1500, confirmed_lsn=1500) == 0.0


def test_lag_is_the_age_of_the_newest_reached_sample():
    clock = LagClock()
    clock.seconds_behind(100.0, 1000, 1000)
    clock.seconds_behind(101.0, 2000, 1000)   # behind since 101 at most
    clock.seconds_behind(102.0, 3000, 1500)
    # 1500 has not reached 2000 (read at 101): it holds what the source had at 100.
    assert clock.seconds_behind(103.0, 4000, 2500) == 2.0  # reached 2000 (read at 101)
    assert clock.seconds_behind(104.0, 5000, 4000) == 1.0  # reached 4000 (read at 103)


def test_a_stalled_pipeline_lags_more_every_second():
    clock = LagClock()
    lags = [clock.seconds_behind(100.0 + s, 1000 + s, 500) for s in range(5)]
    assert lags == [0.0, 1.0, 2.0, 3.0, 4.0]  # nothing reached: since the first sample


def test_samples_stay_bounded_and_the_lag_an_upper_bound(monkeypatch):
    monkeypatch.setattr("acme.observe.lag.MAX_SAMPLES", 10)
    clock = LagClock()
    for second in range(100):
        lag = clock.seconds_behind(float(second), 1000 + second, 999)
    assert len(clock.samples) <= 11
    assert lag == 99.0
