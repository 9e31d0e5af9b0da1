"""Measurement: how nfl times and sizes a method, as one subsystem.

* :mod:`~nfl.measure.policy` -- every timing constant, each with the measurement that chose it;
* :mod:`~nfl.measure.devices` -- a device's name, synchronisation, timing events, measured peak memory;
* :mod:`~nfl.measure.clocks` -- which clock a timing uses (thread CPU time, wall, CUDA events);
* :mod:`~nfl.measure.blocks` -- :class:`~nfl.measure.blocks.BlockTimer`, the fastest of a few blocks of calls;
* :mod:`~nfl.measure.rounds` -- interleaved rounds over a study's cells, their aggregate and the noise rule;
* :mod:`~nfl.measure.runner` -- the timing studies' shared runner, settings, ``--rounds`` and checks;
* :mod:`~nfl.measure.prepared` -- what is timed: a method's initialisation, one optimisation step;
* :mod:`~nfl.measure.threads` -- how many CPU threads a model of a given width should use;
* :mod:`~nfl.measure.memory` -- analytic bytes of parameters, gradients and Adam state.
"""
