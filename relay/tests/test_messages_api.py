"""GET /v1/messages and /v1/messages/{id}: newest first, cursor pages, 404 across accounts."""

from rest_framework.test import APIClient

from relay.models import Message


def test_it_shows_a_message(send, alice_api, alice_sender):
    message_id = send().json()["id"]
    body = alice_api.get(f"/v1/messages/{message_id}").json()
    assert body["id"] == message_id
    assert body["status"] == "queued"
    assert body["sender"] == alice_sender.public_id
    assert body["from"] == "alice@example.org"
    assert body["to"] == ["bob@example.com"]
    assert body["subject"]["policy"] == "sha256"
    assert body["size_approx"] % 1024 == 0 and body["size_approx"] > 0
    assert body["attempts"] == 0
    assert body["last_error"] is None
    assert body["provider_message_id"] is None
    assert body["sent_at"] is None
    assert body["created_at"].endswith("Z")


def test_it_pages_newest_first(send, alice_api, django_assert_max_num_queries):
    ids = [send().json()["id"] for _ in range(5)]
    with django_assert_max_num_queries(3):  # key, page, usage record
        first = alice_api.get("/v1/messages?limit=2").json()
    assert [m["id"] for m in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    second = alice_api.get(f"/v1/messages?limit=2&starting_after={first['data'][-1]['id']}").json()
    assert [m["id"] for m in second["data"]] == ids[::-1][2:4]
    third = alice_api.get(f"/v1/messages?limit=2&starting_after={second['data'][-1]['id']}").json()
    assert [m["id"] for m in third["data"]] == ids[:1]
    assert third["has_more"] is False


def test_it_filters_by_status(send, alice_api):
    first, second = send().json()["id"], send().json()["id"]
    Message.objects.filter(public_id=first).update(status="sent")
    assert [m["id"] for m in alice_api.get("/v1/messages?status=sent").json()["data"]] == [first]
    assert [m["id"] for m in alice_api.get("/v1/messages?status=queued").json()["data"]] == [second]
    bad = alice_api.get("/v1/messages?status=lost")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "status"


def test_bad_paging_parameters(alice_api, db):
    assert alice_api.get("/v1/messages?limit=0").json()["error"]["field"] == "limit"
    assert alice_api.get("/v1/messages?limit=x").json()["error"]["field"] == "limit"
    assert alice_api.get("/v1/messages?starting_after=msg_nope").json()["error"]["field"] == "starting_after"


def test_charlie_cannot_see_alices_messages(send, charlie, make_key):
    message_id = send().json()["id"]
    charlie_api = APIClient()
    charlie_api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(charlie)}")
    response = charlie_api.get(f"/v1/messages/{message_id}")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert charlie_api.get("/v1/messages").json()["data"] == []
    assert charlie_api.get(f"/v1/messages?starting_after={message_id}").status_code == 400
