"""What the credentials step shows under each kind: a key file or a credential file (browsed or
typed, then described without a secret), or what Application Default Credentials find now."""

from pathlib import Path
from typing import Any, Generic, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DirectoryTree, Input, Static

from bqtui.core.errors import ConfigError
from bqtui.destination.credential_files import CredentialFile, load_credential_file
from bqtui.destination.credentials import describe_adc
from bqtui.destination.keyfile import ServiceAccountKey, load_key_file
from bqtui.tui.messages import AdcDetected
from bqtui.tui.widgets.key_file_tree import KeyFileTree
from bqtui.tui.worker_errors import WorkerErrors

T = TypeVar("T")


class PathPane(Vertical, Generic[T]):
    """A file chosen in a browser or typed, loaded with ``read`` and described by ``describe``.

    The ids start with ``prefix``: PREFIX-path, PREFIX-tree, PREFIX-info, and the Load button's
    ``load_id``."""

    INTRO = ""
    PLACEHOLDER = ""
    CHOOSE = ""  # the message when the path is empty

    def __init__(
        self, prefix: str, load_id: str, browse_from: Path, path: str = "", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix
        self.load_id = load_id
        self.browse_from = browse_from
        self.initial_path = path
        self.loaded: T | None = None
        self.loaded_path: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(self.INTRO, classes="step-intro")
        with Horizontal(id=f"{self.prefix}-path-row", classes="path-row"):
            yield Input(
                self.initial_path,
                placeholder=self.PLACEHOLDER,
                id=f"{self.prefix}-path",
                classes="path-input",
            )
            yield Button("Load", id=self.load_id)
        yield KeyFileTree(self.browse_from, id=f"{self.prefix}-tree", classes="file-tree")
        yield Static("", id=f"{self.prefix}-info", classes="file-info")

    def on_mount(self) -> None:
        if self.initial_path:
            self.load(self.initial_path)

    @property
    def path_input(self) -> Input:
        return self.query_one(f"#{self.prefix}-path", Input)

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        path = str(event.path)
        self.path_input.value = path
        self.load(path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.load(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == self.load_id:
            event.stop()
            self.load(self.path_input.value)

    def load(self, path: str) -> None:
        info = self.query_one(f"#{self.prefix}-info", Static)
        self.loaded_path = path
        self.loaded = None
        if not path.strip():
            info.update(Text(self.CHOOSE, style="bold red"))
            info.set_class(True, "error")
            return
        try:
            loaded = self.read(path.strip())
        except ConfigError as error:
            info.update(Text(str(error)))
            info.set_class(True, "error")
            return
        self.loaded = loaded
        info.set_class(False, "error")
        info.update(self.describe(loaded))

    def current(self) -> T | None:
        """The loaded file; loaded again when the path was typed since."""
        if self.path_input.value != self.loaded_path:
            self.load(self.path_input.value)
        return self.loaded

    def read(self, path: str) -> T:
        raise NotImplementedError

    def describe(self, loaded: T) -> Text:
        raise NotImplementedError


class KeyFilePane(PathPane[ServiceAccountKey]):
    INTRO = (
        "Choose the service account's JSON key file (IAM & Admin › Service Accounts › Keys). "
        "It is kept in your system keyring, never in bqtui's database, and its private key "
        "is never shown."
    )
    PLACEHOLDER = "path/to/service-account.json"
    CHOOSE = "Choose a key file, or type its path."

    def __init__(self, browse_from: Path, path: str = "", **kwargs: Any) -> None:
        super().__init__("key", "load-key", browse_from, path, **kwargs)

    def read(self, path: str) -> ServiceAccountKey:
        return load_key_file(path)

    def describe(self, loaded: ServiceAccountKey) -> Text:
        return Text.assemble(
            ("✓ Service account  ", "bold green"),
            loaded.client_email,
            ("\n  Project          ", "bold"),
            loaded.project_id,
        )


class CredentialFilePane(PathPane[CredentialFile]):
    INTRO = (
        "Choose a credential configuration file, as gcloud writes them: a user login "
        "(gcloud auth application-default login), workload identity federation (gcloud iam "
        "workload-identity-pools create-cred-config) or an impersonation configuration. One "
        "that holds a secret (a refresh token) is kept in your system keyring, one without in "
        "the export's configuration; no secret in it is ever shown."
    )
    PLACEHOLDER = "path/to/credentials.json"
    CHOOSE = "Choose a credential file, or type its path."

    def __init__(self, browse_from: Path, **kwargs: Any) -> None:
        super().__init__("credentials", "load-credentials", browse_from, **kwargs)

    def read(self, path: str) -> CredentialFile:
        return load_credential_file(path)

    def describe(self, loaded: CredentialFile) -> Text:
        kept = (
            "your system keyring (it holds a secret)"
            if loaded.holds_secret
            else "the export's configuration (it holds no secret)"
        )
        text = Text.assemble(
            ("✓ Credential file  ", "bold green"),
            loaded.description,
            ("\n  Kept in          ", "bold"),
            kept,
        )
        if loaded.impersonation_target:
            text.append("\n  Impersonates     ", style="bold")
            text.append(loaded.impersonation_target)
        return text


class AdcPane(WorkerErrors, Vertical):
    """What ADC would use on this machine now; looked for in a worker (a metadata server
    takes up to a second not to answer)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.found: str | None = None  # describe_adc's answer, once it came

    def compose(self) -> ComposeResult:
        yield Static(
            "bqtui stores nothing: every run uses what Application Default Credentials find on "
            "the machine it runs on — the login of gcloud auth application-default login, the "
            "file GOOGLE_APPLICATION_CREDENTIALS names, or the service account of a Google Cloud "
            "machine's metadata server.",
            classes="step-intro",
        )
        with Horizontal(id="adc-row"):
            yield Static("", id="adc-found")
            yield Button("Look again", id="adc-detect", compact=True)

    def detect_once(self) -> None:
        if self.found is None and not self.detecting:
            self.detect()

    @property
    def detecting(self) -> bool:
        return any(w.is_running for w in self.workers if w.group == "adc")

    def detect(self) -> None:
        self.found = None
        self.query_one("#adc-found", Static).update(
            Text("Looking for Application Default Credentials…", style="italic")
        )
        self.detect_in_thread()

    @work(
        thread=True,
        exclusive=True,
        group="adc",
        exit_on_error=False,
        description="Looking for Application Default Credentials",
    )
    def detect_in_thread(self) -> None:
        self.post_message(AdcDetected(describe_adc()))

    def on_adc_detected(self, message: AdcDetected) -> None:
        message.stop()
        self.found = message.text
        usable = message.text.startswith("found:")
        text = Text.assemble(
            ("On this machine now: ", "bold"), (message.text, "green" if usable else "bold red")
        )
        if not usable:
            text.append(
                "\nLog in with gcloud auth application-default login, set "
                "GOOGLE_APPLICATION_CREDENTIALS, or run bqtui on a Google Cloud machine; the "
                "permission check tells what is missing."
            )
        self.query_one("#adc-found", Static).update(text)

    @on(Button.Pressed, "#adc-detect")
    def detect_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.detect()
