"""Which part of a project this build of the component is.

``scripts/build-python-guests.sh`` builds a project that asks for WASI
activities (``cairn.json``: ``{"activities": {"wasi": true}}``) twice: the
orchestrators, without WASI, and the activities, with WASI (files,
environment, clocks, randomness and, with ``"http": true``, outgoing HTTP,
all limited by the grants given at deploy). It puts a module
``cairn_build_role`` on the build path naming the part; any other build
serves every function without WASI.
"""

ROLE_ALL = "all"
ROLE_ORCHESTRATORS = "orchestrators"
ROLE_ACTIVITIES = "activities"

try:
    from cairn_build_role import ROLE  # noqa: F401  (written by the build script)
except ImportError:
    ROLE = ROLE_ALL
