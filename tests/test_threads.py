"""The default thread count: one for small models, two from the measured threshold."""

from nfl.measure.policy import MULTI_THREAD_WIDTH
from nfl.measure.threads import default_threads


def test_small_models_get_one_thread_and_wide_ones_more_where_there_are_cpus() -> None:
    assert default_threads(64) == default_threads(MULTI_THREAD_WIDTH - 1) == 1
    assert 1 <= default_threads(MULTI_THREAD_WIDTH) <= 2
    assert default_threads(1024) == default_threads(MULTI_THREAD_WIDTH)
