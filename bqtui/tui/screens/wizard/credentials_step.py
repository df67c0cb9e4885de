"""Step 1: how the export authenticates — a key file (the default), this machine's Application
Default Credentials or a credential file, each optionally impersonating a service account."""

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Input, RadioSet

from bqtui.core.config import AUTH_DESCRIPTIONS, AuthKind, validate_impersonate
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.tui.screens.wizard.credential_panes import AdcPane, CredentialFilePane, KeyFilePane
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.step import WizardStep
from bqtui.tui.widgets.form_field import FieldParser, FormField
from bqtui.tui.widgets.wrapping_radio_button import WrappingRadioButton

KIND_NAMES = {
    AuthKind.KEY: "Key file",
    AuthKind.ADC: "Application Default Credentials",
    AuthKind.CREDENTIALS_FILE: "Credential file",
}
PANES = {AuthKind.KEY: "key-pane", AuthKind.ADC: "adc-pane", AuthKind.CREDENTIALS_FILE: "file-pane"}
IMPERSONATE_HINT = (
    "Every BigQuery call then runs as this account, with short-lived tokens; the credentials "
    "above need roles/iam.serviceAccountTokenCreator on it. Empty: they run as themselves."
)


def kind_label(kind: AuthKind) -> Text:
    return Text.assemble((KIND_NAMES[kind], "bold"), " — ", AUTH_DESCRIPTIONS[kind])


def optional_impersonate(value: str) -> str | None:
    return validate_impersonate(value) if value.strip() else None


def same_choice(old: CredentialChoice | None, new: CredentialChoice) -> bool:
    """Whether nothing was chosen anew: the same kind, the same loaded file, the same account
    (files are compared by identity: two user logins are equal as dataclasses)."""
    return (
        old is not None
        and old.auth == new.auth
        and old.key is new.key
        and old.file is new.file
        and old.impersonate == new.impersonate
    )


class CredentialsStep(WizardStep):
    TITLE = "Credentials"

    def __init__(self, browse_from: Path, key_path: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.browse_from = browse_from
        self.key_path = key_path

    def compose(self) -> ComposeResult:
        with RadioSet(id="auth-kind"):
            for kind in AuthKind:
                yield WrappingRadioButton(
                    kind_label(kind), value=kind == AuthKind.KEY, name=kind.value
                )
        yield KeyFilePane(self.browse_from, self.key_path, id=PANES[AuthKind.KEY])
        yield AdcPane(id=PANES[AuthKind.ADC])
        yield CredentialFilePane(self.browse_from, id=PANES[AuthKind.CREDENTIALS_FILE])
        yield FormField(
            "Service account to impersonate (optional)",
            Input(placeholder="exporter@my-project.iam.gserviceaccount.com", id="impersonate"),
            IMPERSONATE_HINT,
            id="field-impersonate",
        )

    def on_mount(self) -> None:
        self.show_kind(AuthKind.KEY)

    @property
    def kind(self) -> AuthKind:
        pressed = self.query_one("#auth-kind", RadioSet).pressed_button
        return AuthKind(pressed.name) if pressed is not None and pressed.name else AuthKind.KEY

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        self.show_kind(self.kind)

    def show_kind(self, kind: AuthKind) -> None:
        for each, pane_id in PANES.items():
            self.query_one(f"#{pane_id}").display = each == kind
        if kind == AuthKind.ADC:
            self.query_one(AdcPane).detect_once()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # the impersonated account: checked now rather than at Next
        FieldParser(self).parse("impersonate", optional_impersonate, None)

    def commit(self, draft: WizardDraft) -> bool:
        fields = FieldParser(self)
        impersonate = fields.parse("impersonate", optional_impersonate, None)
        kind = self.kind
        if kind == AuthKind.KEY:
            key = self.query_one(KeyFilePane).current()
            choice = CredentialChoice(kind, key=key, impersonate=impersonate)
            chosen = key is not None
        elif kind == AuthKind.CREDENTIALS_FILE:
            file = self.query_one(CredentialFilePane).current()
            choice = CredentialChoice(kind, file=file, impersonate=impersonate)
            chosen = file is not None
        else:
            choice, chosen = CredentialChoice(kind, impersonate=impersonate), True
        if not (chosen and fields.ok):
            return False
        if not same_choice(draft.credentials, choice):  # the permission check runs again
            draft.credentials = choice
        return True
