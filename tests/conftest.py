import logging
import os
import warnings

import pytest
from threadpoolctl import threadpool_limits

# one BLAS/OpenMP thread per test process: on a busy 2-core machine spinning
# threads slow small fits down many times
threadpool_limits(1)

os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")


@pytest.fixture(autouse=True)
def _quiet_flower():
    logging.getLogger("flwr").setLevel(logging.ERROR)
    yield


@pytest.fixture
def no_data_warnings():
    from fedgmmtree import DataWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        yield
