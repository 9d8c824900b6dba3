from support import PLAYED, Harness


async def test_two_members_see_each_others_join_play_and_leave(jam: Harness) -> None:
    a = await jam.joined("room", "ann")
    b = jam.client()
    state = await b.join("room", "bob")
    assert set(state.presences) == {a.user_id, b.user_id}
    assert b.loop_name == "Amsterdam_Layers"
    diff = await a.diff()
    assert list(diff.joins) == [b.user_id]
    await b.play()
    diff = await a.diff()
    assert diff.joins[b.user_id].metas[0].loop_event == PLAYED
    assert diff.leaves[b.user_id].metas[0].ref == diff.joins[b.user_id].metas[0].ref_prev
    event = (await a.next("loop_event")).loop_event
    assert event.user_id == b.user_id and event.type == PLAYED
    own = await b.diff()
    assert own.joins[b.user_id].metas[0].loop_event == PLAYED
    await b.half_close()
    diff = await a.diff()
    assert list(diff.leaves) == [b.user_id]
    code, _ = await b.status()
    assert code.name == "OK"
    stats = await jam.stats()
    assert stats.jam_count == 1 and stats.user_count == 1
