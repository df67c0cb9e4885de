"""Help: the keys of every screen."""

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

KEYS = """\
[b]Exports (home)[/b]
  n  new export (wizard)          r  run now: the due windows
  b  backfill a date range        c  check key and permissions
  e  edit the export              p  pause / resume
  d  delete (asks first)          l  logs and detail (or Enter)
  a  run due exports while open (each minute; same locks as cron)
  ?  this help                    q  quit
  ctrl+p  command palette: new export, run, check, quit…

[b]New export wizard[/b]
  ctrl+n  next step (each step is checked first)
  escape  previous step; on the first step, leave the wizard
  tab     next field                enter  load the typed key path

[b]Export detail[/b]
  1 runs (with charts)  2 windows  3 configuration  4 verify: BigQuery against ClickHouse

[b]Run[/b]
  x  cancel: stops at the next safe point, nothing half written
  escape  close when the run is over

[b]Detail[/b]
  r  run now   b  backfill   c  check   e  edit   escape  back
  Select a run to see its log.

Exports run here when you press r, and unattended with cron:
  bqtui --run-all   (every due window of every enabled export)"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Static("Keys", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(KEYS)
            yield Button("Close", id="close", variant="primary")

    @on(Button.Pressed, "#close")
    def close_pressed(self) -> None:
        self.dismiss(None)
