"""Step 1: the service-account key file, browsed or typed; its account and project shown."""

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, DirectoryTree, Input, Static

from bqtui.core.errors import KeyFileError
from bqtui.destination.keyfile import ServiceAccountKey, load_key_file
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.step import WizardStep
from bqtui.tui.widgets.key_file_tree import KeyFileTree


class KeyStep(WizardStep):
    TITLE = "Key"

    def __init__(self, browse_from: Path, key_path: str = "", **kwargs):
        super().__init__(**kwargs)
        self.browse_from = browse_from
        self.initial_path = key_path
        self.key: ServiceAccountKey | None = None
        self.loaded_path: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            "Choose the service account's JSON key file (IAM & Admin › Service Accounts › Keys). "
            "It is kept in your system keyring, never in bqtui's database, and its private key "
            "is never shown.",
            classes="step-intro",
        )
        with Horizontal(id="key-path-row"):
            yield Input(
                self.initial_path, placeholder="path/to/service-account.json", id="key-path"
            )
            yield Button("Load", id="load-key")
        yield KeyFileTree(self.browse_from, id="key-tree")
        yield Static("", id="key-info")

    def on_mount(self) -> None:
        if self.initial_path:
            self.load(self.initial_path)

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        path = str(event.path)
        self.query_one("#key-path", Input).value = path
        self.load(path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.load(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "load-key":
            event.stop()
            self.load(self.query_one("#key-path", Input).value)

    def load(self, path: str) -> None:
        info = self.query_one("#key-info", Static)
        self.loaded_path = path
        if not path.strip():
            self.key = None
            info.update(Text("Choose a key file, or type its path.", style="bold red"))
            info.set_class(True, "error")
            return
        try:
            self.key = load_key_file(path.strip())
        except KeyFileError as error:
            self.key = None
            info.update(Text(str(error)))
            info.set_class(True, "error")
            return
        info.set_class(False, "error")
        info.update(
            Text.assemble(
                ("✓ Service account  ", "bold green"),
                self.key.client_email,
                ("\n  Project          ", "bold"),
                self.key.project_id,
            )
        )

    def commit(self, draft: WizardDraft) -> bool:
        path = self.query_one("#key-path", Input).value
        if path != self.loaded_path:
            self.load(path)
        draft.key = self.key
        return self.key is not None
