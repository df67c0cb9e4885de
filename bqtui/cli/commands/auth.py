"""How exports authenticate to BigQuery: the credential flags of `add` and `set-auth`."""

import argparse

from bqtui.cli.command import Command, with_store
from bqtui.cli.exit_codes import EXIT_OK
from bqtui.core.errors import ConfigError
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.state.store import Store

NO_CREDENTIAL = (
    "bqtui {command} needs how the export authenticates: --key-file KEY.json (a service-account "
    "key), or without a key file --adc (this machine's Google login or workload identity) or "
    "--credentials-file FILE.json."
)


def add_credential_arguments(parser: argparse.ArgumentParser) -> None:
    """The credential flags; exactly one of the first three (see ``credential_choice``)."""
    parser.add_argument(
        "--key-file", help="a service-account JSON key file (stored in the keyring)"
    )
    parser.add_argument(
        "--adc",
        action="store_true",
        help="no key file: Application Default Credentials, found at run time (gcloud auth "
        "application-default login, GOOGLE_APPLICATION_CREDENTIALS, a metadata server)",
    )
    parser.add_argument(
        "--credentials-file",
        metavar="FILE",
        help="no key file: a user login (authorized_user), workload identity federation "
        "(external_account) or impersonated_service_account configuration",
    )
    parser.add_argument(
        "--impersonate",
        metavar="SA_EMAIL",
        help="run every BigQuery call as this service account (the credential above needs "
        "roles/iam.serviceAccountTokenCreator on it)",
    )


def credential_choice(args: argparse.Namespace) -> CredentialChoice:
    if not (args.key_file or args.adc or args.credentials_file):
        raise ConfigError(NO_CREDENTIAL.format(command=args.command))
    return CredentialChoice.from_paths(
        key_file=args.key_file,
        adc=args.adc,
        credentials_file=args.credentials_file,
        impersonate=args.impersonate,
    )


def add_arguments_of_set_auth(set_auth: argparse.ArgumentParser) -> None:
    set_auth.add_argument("name")
    add_credential_arguments(set_auth)


def cmd_set_auth(args: argparse.Namespace, store: Store) -> int:
    export = store.require_export(args.name)
    choice = credential_choice(args)
    choice.store_secrets(export.uid)
    store.update_export(choice.configured(export))
    print(f'Export "{export.name}": {choice.summary}')
    print(f"Check permissions with: bqtui check {export.name}")
    return EXIT_OK


COMMANDS = (
    Command(
        "set-auth",
        "switch how an export authenticates (key file, ADC, credential file, impersonation)",
        add_arguments_of_set_auth,
        with_store(cmd_set_auth),
    ),
)
