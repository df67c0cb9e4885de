"""Drive the new-export wizard step by step, as a user would with the keyboard."""

from textual.pilot import Pilot
from textual.widgets import Checkbox, Collapsible, Input, RadioButton, Select, Static

from bqtui.core.config import AuthKind
from bqtui.tui.screens.wizard.screen import NewExportScreen
from bqtui.tui.widgets.permission_report import PermissionReport

from .conftest import wait_until


def wizard(pilot: Pilot) -> NewExportScreen:
    screen = pilot.app.screen
    assert isinstance(screen, NewExportScreen), screen
    return screen


def type_into(pilot: Pilot, selector: str, value: str) -> None:
    wizard(pilot).query_one(selector, Input).value = value


async def next_step(pilot: Pilot) -> None:
    await pilot.press("ctrl+n")
    await pilot.pause()


async def open_wizard(pilot: Pilot) -> NewExportScreen:
    await pilot.press("n")
    await pilot.pause()
    return wizard(pilot)


async def key_step(pilot: Pilot, path: str) -> None:
    type_into(pilot, "#key-path", path)
    await pilot.press("enter")  # loads the key, as Load does
    await pilot.pause()


async def choose_credentials(pilot: Pilot, kind: AuthKind) -> None:
    """Click the credential kind's radio button, as a user would."""
    screen = wizard(pilot)
    button = next(b for b in screen.query(RadioButton) if b.name == kind.value)
    await pilot.click(button)
    await pilot.pause()
    assert button.value, f"{kind} was not chosen"


async def adc_detected(pilot: Pilot) -> str:
    """The ADC detection line once the look-up (a worker) answered."""
    found = wizard(pilot).query_one("#adc-found", Static)
    await wait_until(pilot, lambda: "Looking for" not in str(found.render()))
    return str(found.render())


async def credentials_file_step(pilot: Pilot, path: str, impersonate: str = "") -> None:
    screen = wizard(pilot)
    type_into(pilot, "#impersonate", impersonate)
    path_input = screen.query_one("#credentials-path", Input)
    path_input.value = path
    path_input.focus()
    await pilot.press("enter")  # loads the file, as Load does
    await pilot.pause()


async def destination_step(
    pilot: Pilot,
    *,
    dataset: str,
    table: str,
    name: str,
    endpoint: str = "",
    interval: str = "day",
    start: str = "2024-05-01",
    json_type: bool = False,
    project: str = "",
) -> None:
    type_into(pilot, "#project-id", project)
    type_into(pilot, "#dataset-id", dataset)
    type_into(pilot, "#table-id", table)
    type_into(pilot, "#export-name", name)
    type_into(pilot, "#start", start)
    type_into(pilot, "#bigquery-endpoint", endpoint)
    screen = wizard(pilot)
    screen.query_one("#interval", Select).value = interval
    screen.query_one("#json-type", Checkbox).value = json_type
    await pilot.pause()


async def finish_permission_check(pilot: Pilot) -> PermissionReport:
    report = wizard(pilot).query_one(PermissionReport)
    await wait_until(pilot, lambda: report.report is not None and not report.running)
    await pilot.pause()
    return report


async def stage_fields(pilot: Pilot, uri: str = "", hmac_id: str = "", secret: str = "") -> None:
    """Unfold the destination step's Cloud Storage stage and type into its fields."""
    stage = wizard(pilot).query_one("#stage", Collapsible)
    stage.collapsed = False
    await pilot.pause()
    type_into(pilot, "#stage-uri", uri)
    type_into(pilot, "#stage-hmac-id", hmac_id)
    type_into(pilot, "#stage-hmac-secret", secret)
    await pilot.pause()
