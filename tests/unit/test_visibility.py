"""Which streamed transactions a copy's snapshot already contains."""

from acme.capture.visibility import SnapshotVisibility


def test_committed_before_snapshot_is_seen_and_later_ones_are_not():
    snapshot = SnapshotVisibility(xmin=100, xmax=110, in_progress=frozenset({103, 107}))
    assert snapshot.saw(99)
    assert snapshot.saw(100) and snapshot.saw(109)
    assert not snapshot.saw(103) and not snapshot.saw(107)
    assert not snapshot.saw(110) and not snapshot.saw(500)


def test_xids_are_widened_across_the_32_bit_wrap():
    epoch = 3 << 32
    snapshot = SnapshotVisibility(xmin=epoch + 5, xmax=epoch + 10, in_progress=frozenset())
    assert snapshot.widen(7) == epoch + 7
    assert snapshot.widen(0xFFFFFFF0) == epoch - 16  # previous epoch: long committed
    assert snapshot.saw(0xFFFFFFF0)
    assert not snapshot.saw(12)
