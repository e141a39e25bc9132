package smtpclient

// sendPipelined is Send with PIPELINING (RFC 2920): one write per message
// carries its data, the end-of-data dot and the next message's MAIL, RCPT and
// DATA, and the replies to all of them are read together. At the top of each
// iteration the group for message i has been written.
func (b *batch) sendPipelined() {
	c := b.c
	b.i = b.nextToSend(0)
	if b.i == len(b.envs) {
		if err := b.ctx.Err(); err != nil {
			b.stopped(err)
		}
		return
	}
	if err := b.ctx.Err(); err != nil {
		b.stopped(err)
		return
	}
	c.deadline(b.ctx)
	c.writeGroup(&b.envs[b.i])
	if err := c.flush(); err != nil {
		b.lose(StageMail, err)
		return
	}
	for {
		failed, dataAccepted, ok := b.readGroup()
		if !ok {
			return
		}
		// The next message is asked for only while ctx lasts; a stopped
		// Send or SendEach reports the rest not sent.
		next := b.nextToSend(b.i + 1)
		stopping := b.ctx.Err() != nil
		sendNext := next < len(b.envs) && !stopping
		c.deadline(b.ctx)
		if failed == nil {
			// RFC 2920 section 3.1: "The actual transfer of message
			// content is explicitly allowed to be the first 'command'
			// in a group", so the next message's MAIL, RCPT and DATA
			// follow the end of data in the same write.
			c.writeData(&b.envs[b.i])
			if sendNext {
				c.writeGroup(&b.envs[next])
			}
			ok = b.endOfData()
		} else {
			ok = b.reset(failed, dataAccepted, sendNext)
		}
		if !ok || !sendNext {
			if ok && stopping {
				b.stopped(b.ctx.Err())
			}
			return
		}
		b.report()
	}
}

// readGroup reads the replies to message i's MAIL, RCPT and DATA and returns
// the refusal that decides it, if any, and whether DATA got its 354. RFC 2920
// section 3.1: the client MUST check every reply of the group, and the first
// failure is the one that counts. ok is false when the connection was given
// up.
func (b *batch) readGroup() (failed *Error, dataAccepted, ok bool) {
	c := b.c
	code := 0
	for k, stage := range groupStages {
		var err error
		code, err = c.readReply()
		if err != nil {
			b.lose(stage, err)
			return nil, false, false
		}
		if !groupReplyOK(k, code) && failed == nil {
			failed = c.replyError(stage, code, stage)
		}
		if code == CodeServiceUnavailable {
			// RFC 5321 section 3.8: the server is closing the
			// channel; nothing more will be read.
			b.closing(failed, c.replyError(stage, code, stage))
			return nil, false, false
		}
	}
	// code is DATA's reply.
	dataAccepted = code == codeStartMailData
	if failed == nil && !dataAccepted {
		failed = c.replyError(StageData, code, "DATA")
	}
	return failed, dataAccepted, true
}
