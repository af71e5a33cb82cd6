"""The Python side of bench/peers' workloads, the same for every system
(on PYTHONPATH in each system's node): functions any bridge can call by
module and name."""


def echo(x):
    """The value back, as the bridge hands it over."""
    return x


def cpu(n):
    """About 1 ms of pure Python for the n the harness uses."""
    return sum(i * i for i in range(n))


def float64_round_trip(data):
    """Bytes of float64 in, as a numpy array without a copy, and the
    array's bytes out: what a bridge without arrays does for numpy."""
    import numpy
    a = numpy.frombuffer(data, dtype=numpy.float64)
    return a.tobytes()
