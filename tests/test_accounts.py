from __future__ import annotations

import contextlib
import json

import pytest
from gradio_client import Client

from mmdemo import accounts
from mmdemo.accounts import AccessDenied
from mmdemo.data import default_store
from tests.conftest import free_port
from tests.labeling_helpers import PASSWORD, add_accounts, fake_predictor, make_images


def test_passwords_are_salted_hashes_that_verify():
    first, second = accounts.hash_password("hunter2-long"), accounts.hash_password("hunter2-long")
    assert first != second and "hunter2" not in first  # a fresh salt each time
    assert accounts.verify_password("hunter2-long", first)
    assert not accounts.verify_password("hunter3-long", first)
    assert not accounts.verify_password("anything", None) and not accounts.verify_password("x", "garbage")


def test_accounts_roles_and_the_role_order():
    store = default_store()
    accounts.add_user("ada", "admin", PASSWORD, store=store)
    accounts.add_user("rev", "reviewer", PASSWORD, store=store)
    with pytest.raises(ValueError, match="at least 8"):
        accounts.add_user("bob", "annotator", "short", store=store)
    with pytest.raises(ValueError, match="unknown role"):
        accounts.add_user("bob", "boss", PASSWORD, store=store)
    with pytest.raises(ValueError, match="not a usable name"):
        accounts.add_user("anonymous", "admin", PASSWORD, store=store)
    assert accounts.authenticate("ada", PASSWORD, store=store)
    assert not accounts.authenticate("ada", "wrong password", store=store)
    assert accounts.require_role("ada", "reviewer", store=store) == "admin"
    with pytest.raises(AccessDenied, match="needs the admin role"):
        accounts.require_role("rev", "admin", store=store)
    accounts.set_role("rev", "admin", store=store)
    assert accounts.role_of("rev", store=store) == "admin"
    assert accounts.role_of("stranger", store=store) is None


def test_anonymous_visitors_annotate_unless_refused_by_config(monkeypatch):
    assert accounts.role_of("anonymous") == "annotator"
    assert accounts.gradio_auth() is None  # no accounts: an open demo
    monkeypatch.setenv("MMDEMO_ANONYMOUS_WRITES", "0")
    with pytest.raises(AccessDenied, match="anonymous visitors"):
        accounts.require_role("anonymous:abc", "annotator")


def test_signing_in_with_hugging_face_on_a_space_gets_the_default_role(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/mmdemo")
    assert accounts.role_of("hf-user") == "annotator"
    accounts.add_user("hf-boss", "admin", None, oauth=True)
    assert accounts.role_of("hf-boss") == "admin"
    assert not accounts.authenticate("hf-boss", "")  # no password sign-in for OAuth accounts
    assert accounts.gradio_auth() is None  # Spaces use the LoginButton instead


def test_admins_by_role_or_by_name_may_roll_back_model_versions(monkeypatch):
    store = default_store()
    assert accounts.may_roll_back("anonymous", store=store)  # an open demo: no accounts, no MMDEMO_ADMINS
    monkeypatch.setenv("MMDEMO_ADMINS", "root")
    assert accounts.may_roll_back("root", store=store)
    assert not accounts.may_roll_back("anonymous", store=store)
    monkeypatch.delenv("MMDEMO_ADMINS")
    add_accounts(store, {"boss": "admin", "rita": "reviewer", "ann": "annotator"}, password=PASSWORD)
    assert accounts.may_roll_back("boss", store=store)
    for refused in ("rita", "ann", "anonymous", "stranger"):
        assert not accounts.may_roll_back(refused, store=store)
    with pytest.raises(AccessDenied, match="only admins may roll back"):
        accounts.require_roll_back("ann", store=store)
    monkeypatch.setenv("MMDEMO_ADMINS", "ops")  # named admins and admin accounts both may
    assert accounts.may_roll_back("ops", store=store) and accounts.may_roll_back("boss", store=store)
    assert not accounts.may_roll_back("ann", store=store)


@contextlib.contextmanager
def served_app(monkeypatch, *, with_auth: bool):
    """The whole app, served in this process, with sign-in when accounts exist."""
    from mmdemo.labeling import queue
    from mmdemo.ui.app import build_app, launch_options

    # the app's pre-fills come from the fake model instead of the served one
    monkeypatch.setattr(queue.ModelPredictor, "__call__", lambda self, *item: fake_predictor(*item))
    demo = build_app()
    options = launch_options() if with_auth else {}
    demo.queue().launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **options
    )
    try:
        yield demo.local_url
    finally:
        demo.close()


def _client(url: str, name: str) -> Client:
    return Client(url, auth=(name, PASSWORD), verbose=False)


def test_roles_are_enforced_through_the_api(monkeypatch, tmp_path):
    store = default_store()
    add_accounts(store, {"boss": "admin", "rita": "reviewer", "ann": "annotator"}, password=PASSWORD)
    folder = make_images(tmp_path / "imgs", 3)
    with served_app(monkeypatch, with_auth=True) as url:
        with pytest.raises(Exception):  # noqa: B017 - no account, no API
            Client(url, verbose=False)
        annotator, reviewer, admin = _client(url, "ann"), _client(url, "rita"), _client(url, "boss")
        assert annotator.predict(api_name="/whoami") == {"user": "ann", "role": "annotator"}

        job_args = ("photos", "caption", str(folder), None, "", "", 2, "", "", 20, "random", 0)
        with pytest.raises(Exception, match="needs the admin role"):
            annotator.predict(*job_args, api_name="/labeling_create_job")
        with pytest.raises(Exception, match="needs the admin role"):
            reviewer.predict(*job_args, api_name="/labeling_create_job")
        created = admin.predict(*job_args, api_name="/labeling_create_job")
        assert "Created job" in created[0] and "3 items" in created[0]
        job_id = store.jobs()[0].id

        shown = annotator.predict(job_id, api_name="/labeling_next")
        item_id, progress = shown["item_id"], shown["progress"]
        assert (
            "fake captioner" in shown["model"]
            and shown["prefill"].startswith("prediction for img")
            and (progress["done_by_you"], progress["total_items"]) == (0, 3)
        )
        after = annotator.predict(job_id, item_id, "a grey square", api_name="/labeling_submit")
        assert after["progress"]["done_by_you"] == 1
        assert [(s.user, s.value) for s in store.submissions(job_id)] == [("ann", "a grey square")]

        # An annotator cannot read others' labels, decide, see the dashboard or export.
        for api_name, args in [
            ("/labeling_disagreements", (job_id,)),
            ("/labeling_open_disagreement", (job_id, item_id)),
            ("/labeling_decide", (job_id, item_id, None, "mine")),
            ("/labeling_dashboard", (job_id,)),
            ("/export", ("caption", "jsonl", True, True)),
            ("/labeling_accounts", ()),
            ("/labeling_set_role", ("ann", "admin")),
        ]:
            with pytest.raises(Exception, match=r"needs the (reviewer|admin) role"):
                annotator.predict(*args, api_name=api_name)
        with pytest.raises(Exception, match="needs the admin role"):
            reviewer.predict("caption", "jsonl", True, True, api_name="/export")
        with pytest.raises(Exception, match="needs the admin role"):
            reviewer.predict("rita", "admin", api_name="/labeling_set_role")
        assert accounts.role_of("ann", store=store) == "annotator"
        # ...nor submit a label for an item that is not theirs.
        view = reviewer.predict(job_id, api_name="/labeling_next")
        while store.assignment_status(int(view["item_id"]), "ann") is not None:
            view = reviewer.predict(job_id, view["item_id"], "rita's caption", api_name="/labeling_submit")
        other_item = int(view["item_id"])
        with pytest.raises(Exception, match="not assigned to ann"):
            annotator.predict(job_id, other_item, "hijack", api_name="/labeling_submit")

        dashboard = reviewer.predict(job_id, api_name="/labeling_dashboard")
        assert "photos" in json.dumps(dashboard[0], default=str)
        archive, exported = admin.predict("caption", "jsonl", False, True, api_name="/export")
        assert archive.endswith(".zip") and "train" in exported["rows"]

        # The Status tab's rollback: only admins get past the permission check.
        for refused in (annotator, reviewer):
            with pytest.raises(Exception, match="only admins may roll back"):
                refused.predict("caption", "", api_name="/rollback")
        with pytest.raises(Exception, match="nothing to roll back"):
            admin.predict("caption", "", api_name="/rollback")

        message, table = admin.predict("rita", "admin", api_name="/labeling_set_role")
        assert "rita** is now admin" in message and ["rita", "admin"] in [row[:2] for row in table["data"]]


def test_anonymous_labels_are_marked_and_refused_by_config(monkeypatch, tmp_path):
    from mmdemo.labeling import jobs

    job = jobs.create_job(
        None, "open", "caption", jobs.folder_files(make_images(tmp_path / "i", 2), "caption")
    )
    with served_app(monkeypatch, with_auth=False) as url:
        visitor = Client(url, verbose=False)
        assert visitor.predict(api_name="/whoami")["user"] == "anonymous"
        shown = visitor.predict(job.id, api_name="/labeling_next")
        shown = visitor.predict(job.id, shown["item_id"], "an anonymous caption", api_name="/labeling_submit")
        [submission] = default_store().submissions(job.id)
        assert submission.anonymous and submission.user.startswith("anonymous:")
        finished = visitor.predict(job.id, shown["item_id"], "another caption", api_name="/labeling_submit")
        assert finished == {"done": True, "item_id": None}
        monkeypatch.setenv("MMDEMO_ANONYMOUS_WRITES", "0")
        with pytest.raises(Exception, match="anonymous visitors may not"):
            visitor.predict(job.id, api_name="/labeling_next")


def test_cli_manages_accounts_and_jobs(capsys, tmp_path, monkeypatch):
    from mmdemo import cli

    assert cli.main(["users", "add", "ana", "--role", "admin", "--password", PASSWORD]) == 0
    assert cli.main(["users", "add", "bo", "--role", "annotator", "--password", "short"]) == 2
    assert "at least 8" in capsys.readouterr().err
    prompted = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(prompted))
    assert cli.main(["users", "add", "bo", "--role", "annotator"]) == 0  # password asked for
    assert accounts.authenticate("bo", PASSWORD)
    assert cli.main(["users", "set-role", "bo", "reviewer"]) == 0
    assert cli.main(["users", "set-role", "nobody", "admin"]) == 2
    capsys.readouterr()
    assert cli.main(["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ana" in listing and "reviewer" in listing and "scrypt" not in listing

    folder = make_images(tmp_path / "imgs", 2)
    args = ["jobs", "create", "--name", "q", "--task", "vqa", "--folder", str(folder), "--overlap", "2"]
    assert cli.main(args) == 2 and "needs questions" in capsys.readouterr().err
    assert cli.main([*args, "--prompts", "what colour?,is it square?"]) == 0
    assert "4 items, overlap 2" in capsys.readouterr().out
    assert cli.main([*args, "--prompts", "again?"]) == 2  # the name is taken


def test_current_user_reads_a_hugging_face_sign_in_from_the_session():
    from types import SimpleNamespace

    from mmdemo.ui.common import current_user

    session = {"oauth_info": {"userinfo": {"preferred_username": "hf-ana"}}}
    signed_in = SimpleNamespace(username=None, request=SimpleNamespace(scope={"session": session}))
    assert current_user(signed_in) == "hf-ana"  # type: ignore[arg-type]
    no_session = SimpleNamespace(username=None, request=SimpleNamespace(scope={}))
    assert current_user(no_session) == "anonymous"  # type: ignore[arg-type]
