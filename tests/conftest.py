"""Shared test setup: converted benchmark files go to a per-session folder, not ~/.cache."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def dataset_cache(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("dataset-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CARAT_DATASET_CACHE", str(folder))
        yield folder
