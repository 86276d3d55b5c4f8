"""The rollout page (issue 19 item 1): an admin uploads a signed release and rolls it out to a
handheld, an account's or all; everyone sees each handheld's update state; only admins act,
with the CSRF token, and the audit log says so."""

import io

import pytest
from adminpage import csrf_of, log_in
from sqlalchemy import select

from devkit import release
from gateway.models import AuditEntry, DeviceUpdate, FirmwareRelease
from gateway.services import devices
from gateway.web import auth
from protocol import ota


@pytest.fixture
def release_file(tmp_path) -> bytes:
    key = tmp_path / "release.key"
    release.make_key(key)
    packed = ota.MAGIC + b"0.3.0\n" + b"0 app/\n5 app/x\nhello"
    return packed + release.sign(packed, release.load_key(key))


def upload(client, data: bytes):
    token = csrf_of(client.get("/releases").text)
    form = {"csrf_token": token, "release": (io.BytesIO(data), "fw.release")}
    return client.post("/releases", data=form, content_type="multipart/form-data")


def roll_out(client, version: str, **form):
    form["csrf_token"] = csrf_of(client.get("/releases").text)
    return client.post(f"/releases/{version}/rollout", data=form)


def actions(dbs) -> list[str]:
    dbs.expire_all()
    return list(dbs.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_an_admin_uploads_a_release_rolls_it_out_and_the_page_shows_each_state(
    client, dbs, release_file
):
    for device_id in ("hh-1", "hh-2"):
        devices.provision(dbs, device_id, 1000)
    dbs.commit()
    assert upload(client, release_file).status_code == 302
    assert dbs.get(FirmwareRelease, "0.3.0").size == len(release_file) - ota.KEY_BYTES
    assert roll_out(client, "0.3.0", target="devices", devices="hh-1").status_code == 302
    dbs.expire_all()
    assert dbs.get(DeviceUpdate, "hh-1").state == "offered"
    assert dbs.get(DeviceUpdate, "hh-2") is None
    page = client.get("/releases").text
    row = page[page.index('id="update-hh-1"') :]
    assert "0.3.0" in row[: row.index("</tr>")] and "offered" in row[: row.index("</tr>")]
    assert roll_out(client, "0.3.0", target="all").status_code == 302
    dbs.expire_all()
    assert dbs.get(DeviceUpdate, "hh-2").state == "offered"
    assert actions(dbs) == ["upload_release", "rollout_release", "rollout_release"]


def test_a_file_that_is_not_a_release_or_an_unknown_handheld_is_refused(client, dbs, release_file):
    assert upload(client, b"not a release" * 40).status_code == 302
    assert dbs.scalars(select(FirmwareRelease)).all() == []
    assert upload(client, release_file).status_code == 302
    assert roll_out(client, "0.3.0", target="devices", devices="nobody").status_code == 302
    dbs.expire_all()
    assert dbs.scalars(select(DeviceUpdate)).all() == []
    assert actions(dbs) == ["upload_release"]


def test_a_dispatcher_sees_the_page_and_may_not_act(app, dbs, release_file):
    auth.ensure_user(dbs, "dispatcher-1", "password-1", "dispatcher")
    dbs.commit()
    dispatcher = app.test_client()
    assert log_in(dispatcher, "dispatcher-1", "password-1").status_code == 302
    assert dispatcher.get("/releases").status_code == 200
    assert upload(dispatcher, release_file).status_code == 403
    assert roll_out(dispatcher, "0.3.0", target="all").status_code == 403
    assert actions(dbs) == []


def test_the_rollout_page_speaks_chinese(client):
    client.post("/lang", data={"lang": "zh", "csrf_token": csrf_of(client.get("/").text)})
    page = client.get("/releases").text
    assert "固件版本" in page and "上传固件版本" in page
