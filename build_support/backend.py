"""The build backend: setuptools, with its scratch folders outside the source tree.

`pip install /path/to/checkout` (and `pip wheel`, `python -m build`) would otherwise leave build/ and
edgedigits.egg-info/ in the checkout. setuptools reads one more configuration file named by
DIST_EXTRA_CONFIG; here it points build/ and the egg-info at a temporary folder removed afterwards.
Editable installs are setuptools' own (their egg-info beside the code is what makes them work).
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  the hooks not wrapped below


@contextlib.contextmanager
def _scratch_elsewhere():
    with tempfile.TemporaryDirectory(prefix="edgedigits-build-") as tmp:
        cfg = os.path.join(tmp, "extra.cfg")
        with open(cfg, "w") as f:
            f.write(f"[build]\nbuild_base = {os.path.join(tmp, 'build')}\n[egg_info]\negg_base = {tmp}\n")
        before = os.environ.get("DIST_EXTRA_CONFIG")
        os.environ["DIST_EXTRA_CONFIG"] = cfg
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("DIST_EXTRA_CONFIG", None)
            else:
                os.environ["DIST_EXTRA_CONFIG"] = before


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with _scratch_elsewhere():
        return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    with _scratch_elsewhere():
        return _setuptools.build_sdist(sdist_directory, config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    with _scratch_elsewhere():
        return _setuptools.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def get_requires_for_build_wheel(config_settings=None):  # setuptools runs egg_info to answer this
    with _scratch_elsewhere():
        return _setuptools.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_sdist(config_settings=None):
    with _scratch_elsewhere():
        return _setuptools.get_requires_for_build_sdist(config_settings)
