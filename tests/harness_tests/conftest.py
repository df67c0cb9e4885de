# The root conftest loads this plugin too; importing it here keeps the harness tests
# runnable on their own whatever the root conftest does.
from tests.harness.fixtures import *  # noqa: F403
