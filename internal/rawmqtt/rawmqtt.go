package rawmqtt

import (
	"bytes"
	"net"
)

// Header encodes an MQTT fixed header: the first byte (type and flags)
// and the remaining length.
func Header(first byte, remaining int) []byte {
	h := []byte{first}
	for {
		b := byte(remaining % 128)
		remaining /= 128
		if remaining > 0 {
			b |= 0x80
		}
		h = append(h, b)
		if remaining == 0 {
			return h
		}
	}
}

// Connect is an MQTT 3.1.1 CONNECT: clean session, keepalive 60s, no
// credentials.
func Connect(clientID string) []byte {
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(clientID))}, clientID...)
	return append(Header(0x10, len(body)), body...)
}

// Stream writes header, then size zero bytes until the peer closes the
// connection; it returns how many of those it could write and the error
// that stopped it (nil if all were written).
func Stream(c net.Conn, header []byte, size int) (int, error) {
	if _, err := c.Write(header); err != nil {
		return 0, err
	}
	buf := make([]byte, 64<<10)
	sent := 0
	for sent < size {
		n, err := c.Write(buf[:min(len(buf), size-sent)])
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// Connect5 is an MQTT 5 CONNECT: clean start, keepalive 60s, no
// credentials.
func Connect5(clientID string) []byte {
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, byte(len(clientID) >> 8), byte(len(clientID))}, clientID...)
	return append(Header(0x10, len(body)), body...)
}

// PublishPadded5 is an MQTT 5 QoS 1 PUBLISH whose properties carry a user
// property of pad bytes: mochi echoes a publish's properties in its
// PUBACK, so a client that sends these and never reads fills its socket
// with acknowledgements at once.
func PublishPadded5(topic string, id uint16, payload []byte, pad int) []byte {
	prop := []byte{0x26, 0, 3, 'p', 'a', 'd', byte(pad >> 8), byte(pad)}
	prop = append(prop, bytes.Repeat([]byte("x"), pad)...)
	props := varint(len(prop))
	body := append([]byte{byte(len(topic) >> 8), byte(len(topic))}, topic...)
	body = append(body, byte(id>>8), byte(id))
	body = append(body, props...)
	body = append(body, prop...)
	body = append(body, payload...)
	return append(Header(0x32, len(body)), body...)
}

// varint is MQTT's variable byte integer.
func varint(n int) []byte { return Header(0, n)[1:] }
