//! The model's channels (§3): `channel_action` (rendezvous or block, with preference and
//! `schedule_all` choosing who runs next) and the completion of a channel step.

use super::{ChOp, Flow, Model, Msg, Out, Pend, Susp, E};

impl Model<'_> {
    // ---------- channels (§3, channel_action) ----------

    pub(super) fn channel_action(&mut self, me: usize, op: ChOp) -> Flow {
        let (chi, dir, msg) = match &op {
            ChOp::Receive(ch) => (*ch, -1i8, None),
            ChOp::Send { ch, items, i, .. } => (*ch, 1, Some(items[*i].clone())),
        };
        let d = dir as isize;
        let ch = &mut self.chans[chi];
        let cando = if dir > 0 {
            ch.balance < 0
        } else {
            ch.balance > 0
        };
        if cando {
            let tgt = ch
                .queue
                .pop_front()
                .expect("model: balance without waiters");
            ch.balance += d;
            let (schedule_all, preference) = (ch.schedule_all, ch.preference);
            let got = if dir > 0 {
                self.ts[tgt].slot = msg;
                None
            } else {
                self.ts[tgt].slot.take()
            };
            self.ts[tgt].blocked = 0;
            if schedule_all {
                self.ring_insert(tgt);
                let next = self.ring[1];
                self.switch(me, Some(next), Susp::Rendezvous(op, got))
            } else if preference == -dir {
                self.ring_insert_after_current(tgt);
                self.switch(me, Some(tgt), Susp::Rendezvous(op, got))
            } else {
                self.ring_insert(tgt);
                self.channel_done(me, op, Ok(got))
            }
        } else {
            if ch.closing {
                return self.channel_done(me, op, Err((E::Closed, msg)));
            }
            // An error that waited for this tasklet's next suspension is delivered instead
            // of blocking.
            if let Some(Pend::Err(e)) = self.ts[me].pending.take() {
                return self.channel_done(me, op, Err((e, msg)));
            }
            let ch = &mut self.chans[chi];
            ch.queue.push_back(me);
            ch.balance += d;
            self.ts[me].blocked = dir;
            self.ts[me].on = chi;
            self.ts[me].slot = msg;
            self.ring_remove(me);
            let next = self.ring.front().copied();
            self.switch(me, next, Susp::Blocked(op))
        }
    }

    pub(super) fn channel_done(
        &mut self,
        me: usize,
        op: ChOp,
        res: Result<Option<Msg>, (E, Option<Msg>)>,
    ) -> Flow {
        match op {
            ChOp::Receive(_) => match res {
                Ok(Some(Msg::Value(v))) => self.out(me, Out::Value(v)),
                Ok(Some(Msg::Thrown(p))) => self.out(me, Out::Err(E::Thrown(p))),
                Ok(None) => panic!("model: a receive completed without a message"),
                Err((e, _)) => self.out(me, Out::Err(e)),
            },
            ChOp::Send { ch, items, i, seq } => match res {
                Ok(_) if i + 1 < items.len() => self.channel_action(
                    me,
                    ChOp::Send {
                        ch,
                        items,
                        i: i + 1,
                        seq,
                    },
                ),
                Ok(_) => self.out(
                    me,
                    if seq {
                        Out::Sent(items.len())
                    } else {
                        Out::Done
                    },
                ),
                Err((e, Some(back))) => self.out(me, Out::ErrBack(e, back.back())),
                // Delivered before the error came: nothing to give back.
                Err((e, None)) => self.out(me, Out::Err(e)),
            },
        }
    }
}
