package rawmqtt

import "net"

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
