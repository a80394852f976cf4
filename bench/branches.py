"""A branched conversation against a straight one of the same size: a page view and a send, storage and time."""

from chatbot.conversations import DONE, Conversations, new_id
from support import as_guest

from .pages import CountingStore, storage_urls, timed
from .registry import Row, benchmark
from .servers import bench_app

MESSAGES = 200
BRANCHES = 10
MODEL = "fake-model"


def _finish(conversations, cid, reply):
    conversations.finish_reply(cid, reply.id, f"A reply of some length to say something about {reply.id}.", DONE)


def straight(conversations):
    """A conversation of MESSAGES messages in one line; its id."""
    conversation, reply = conversations.start("Question 0", MODEL)
    _finish(conversations, conversation.id, reply)
    for number in range(1, MESSAGES // 2):
        _, reply = conversations.add_exchange(conversation.id, f"Question {number}", MODEL)
        _finish(conversations, conversation.id, reply)
    return conversation.id


def branched(conversations):
    """A conversation of MESSAGES messages in BRANCHES branches (edits of the first line's questions); its id."""
    per_branch = MESSAGES // BRANCHES
    cid = None
    for branch in range(BRANCHES):
        if cid is None:
            conversation, reply = conversations.start("Question 0", MODEL)
            cid = conversation.id
        else:  # a new version of one of the first branch's questions: a branch from there
            first_line = conversations.get(cid).messages[:per_branch:2]
            conversation, reply = conversations.edit(cid, first_line[branch % len(first_line)].id, "Again", MODEL)
        _finish(conversations, cid, reply)
        for number in range(1, per_branch // 2):
            _, reply = conversations.add_exchange(cid, f"Question {branch}.{number}", MODEL)
            _finish(conversations, cid, reply)
    assert len(conversations.get(cid).messages) == MESSAGES
    return cid


def measure(app, build):
    """(requests, ms) of a page view and of a send (model excluded) on the conversation build() makes."""
    uid = new_id()
    cid = build(Conversations(app.extensions["store"], uid))
    client = as_guest(app.test_client(), uid)
    figures = []
    for call in (
        lambda: client.get(f"/c/{cid}"),
        lambda: client.post(f"/c/{cid}/messages", data={"text": "One more"}, headers={"HX-Request": "true"}),
    ):
        counting = app.extensions["store"] = CountingStore(app.extensions["store"])
        call()
        app.extensions["store"] = counting.store
        figures.append((counting.count, timed(call, 10)))
        app.extensions["replies"].wait_for_jobs(30)
    return figures


@benchmark("branches")
def branches(servers):
    """A page view and a send on 200 messages in 10 branches against 200 in one line, folder and S3."""
    rows = []
    for backend, url in storage_urls(servers.s3).items():
        app = bench_app(STORAGE_URL=url)
        (line_view, line_send), (tree_view, tree_send) = measure(app, straight), measure(app, branched)
        for what, line, tree in (("page view", line_view, tree_view), ("send", line_send, tree_send)):
            ratio = tree[1] / line[1]
            rows.append(
                Row(
                    f"A {what} on {MESSAGES} messages in {BRANCHES} branches vs in one line ({backend})",
                    f"{tree[0]} vs {line[0]} requests; {tree[1]:.1f} vs {line[1]:.1f} ms ({ratio:.2f}×)",
                    "≤ 1.2×",
                    ratio <= 1.2 and tree[0] <= line[0],
                    "server time through the test client, median of 10; store requests of one; model excluded "
                    "(the fake model answers at once)",
                )
            )
    return rows
