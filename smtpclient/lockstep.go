package smtpclient

// sendLockStep is Send without PIPELINING: each command waits for its reply
// (RFC 5321 section 4.1).
func (b *batch) sendLockStep() {
	c := b.c
	for b.i = b.nextToSend(0); b.i < len(b.envs); b.i = b.nextToSend(b.i) {
		if err := b.ctx.Err(); err != nil {
			b.stopped(err)
			return
		}
		failed, ok := b.commandsLockStep()
		if !ok {
			return
		}
		c.deadline(b.ctx)
		if failed != nil {
			ok = b.reset(failed, false, false)
		} else {
			c.writeData(&b.envs[b.i])
			ok = b.endOfData()
		}
		if !ok {
			return
		}
		b.report()
	}
	if err := b.ctx.Err(); err != nil {
		b.stopped(err)
	}
}

// commandsLockStep sends message i's MAIL, RCPT and DATA one at a time and
// returns the first refusal, which ends the transaction. ok is false when the
// connection was given up.
func (b *batch) commandsLockStep() (failed *Error, ok bool) {
	c, e := b.c, &b.envs[b.i]
	for k, stage := range groupStages {
		c.deadline(b.ctx)
		switch k {
		case 0:
			c.writeMail(e)
		case 1:
			c.writeRcpt(e)
		case 2:
			c.writeDataCommand()
		}
		code, err := c.roundTrip()
		if err != nil {
			b.lose(stage, err)
			return nil, false
		}
		if code == CodeServiceUnavailable {
			b.closing(nil, c.replyError(stage, code, stage))
			return nil, false
		}
		if !groupReplyOK(k, code) {
			return c.replyError(stage, code, stage), true
		}
	}
	return nil, true
}
