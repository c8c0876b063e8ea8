// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The session API over gRPC, as Scalekit's official SDKs call it: unary
// calls to scalekit.v1.sessions.SessionService on the environment URL over
// HTTP/2. Messages are encoded here by hand from the field numbers of
// Scalekit's published API definitions; only what these four calls carry.

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const sessionService = "/scalekit.v1.sessions.SessionService/"

// errorInfoType is the detail type Scalekit's errors carry; the SDKs read its
// error_code.
const errorInfoType = "scalekit.v1.errdetails.ErrorInfo"

// maxGRPCMessage bounds a request message.
const maxGRPCMessage = 1 << 20

func isGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

func (s *Server) serveGRPC(w http.ResponseWriter, r *http.Request) {
	ct := r.Header.Get("Content-Type")
	if ct != "application/grpc" && ct != "application/grpc+proto" {
		grpcError(w, &apiError{codeUnimplemented, "only the proto codec is served"})
		return
	}
	method, ok := strings.CutPrefix(r.URL.Path, sessionService)
	call := map[string]func([]byte) ([]byte, *apiError){
		"GetSession":            s.grpcGetSession,
		"GetUserSessions":       s.grpcGetUserSessions,
		"RevokeSession":         s.grpcRevokeSession,
		"RevokeAllUserSessions": s.grpcRevokeAllUserSessions,
	}[method]
	if r.Method != http.MethodPost || !ok || call == nil {
		grpcError(w, &apiError{codeUnimplemented, "unknown method " + r.URL.Path})
		return
	}
	msg, err := readGRPCMessage(r.Body)
	if err != nil {
		grpcError(w, &apiError{codeInternal, err.Error()})
		return
	}
	if apiErr := s.authorizeAPI(r); apiErr != nil {
		grpcError(w, apiErr)
		return
	}
	out, apiErr := call(msg)
	if apiErr != nil {
		grpcError(w, apiErr)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
	w.WriteHeader(http.StatusOK)
	frame := make([]byte, 5, 5+len(out))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(out)))
	w.Write(append(frame, out...))
	w.Header().Set("Grpc-Status", "0")
	w.Header().Set("Grpc-Message", "")
}

// readGRPCMessage reads the one length-prefixed message of a unary call.
func readGRPCMessage(body io.Reader) ([]byte, error) {
	var prefix [5]byte
	if _, err := io.ReadFull(body, prefix[:]); err != nil {
		return nil, errors.New("missing message prefix")
	}
	n := binary.BigEndian.Uint32(prefix[1:])
	switch {
	case prefix[0] != 0:
		return nil, errors.New("compressed messages are not supported")
	case n > maxGRPCMessage:
		return nil, errors.New("message too large")
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(body, msg); err != nil {
		return nil, errors.New("truncated message")
	}
	return msg, nil
}

// grpcError answers trailers-only: the status in the response headers, no
// body, with an ErrorInfo detail as Scalekit sends.
func grpcError(w http.ResponseWriter, e *apiError) {
	var info, any, status []byte
	info = appendString(info, 1, errorCodeName(e.code))
	any = appendString(any, 1, "type.googleapis.com/"+errorInfoType)
	any = appendBytes(any, 2, info)
	status = appendVarint(status, 1, uint64(e.code))
	status = appendString(status, 2, e.msg)
	status = appendBytes(status, 3, any)
	h := w.Header()
	h.Set("Content-Type", "application/grpc+proto")
	h.Set("Grpc-Status", strconv.Itoa(e.code))
	h.Set("Grpc-Message", url.PathEscape(e.msg))
	h.Set("Grpc-Status-Details-Bin", base64.RawStdEncoding.EncodeToString(status))
	w.WriteHeader(http.StatusOK)
}

func errorCodeName(code int) string {
	switch code {
	case codeInvalidArgument:
		return "INVALID_ARGUMENT"
	case codeNotFound:
		return "NOT_FOUND"
	case codeFailedPrecondition:
		return "FAILED_PRECONDITION"
	case codeUnimplemented:
		return "UNIMPLEMENTED"
	case codeUnauthenticated:
		return "UNAUTHENTICATED"
	}
	return "INTERNAL"
}

func (s *Server) grpcGetSession(msg []byte) ([]byte, *apiError) {
	var id string
	if err := readFields(msg, func(num int, f field) { id = stringField(id, num, 1, f) }); err != nil {
		return nil, err
	}
	ses, apiErr := s.getSession(id)
	if apiErr != nil {
		return nil, apiErr
	}
	return appendSessionDetails(nil, detailsOf(ses)), nil
}

func (s *Server) grpcRevokeSession(msg []byte) ([]byte, *apiError) {
	var id string
	if err := readFields(msg, func(num int, f field) { id = stringField(id, num, 1, f) }); err != nil {
		return nil, err
	}
	ses, apiErr := s.revokeSession(id)
	if apiErr != nil {
		return nil, apiErr
	}
	return appendBytes(nil, 1, appendRevoked(nil, revokedOf(ses))), nil
}

func (s *Server) grpcRevokeAllUserSessions(msg []byte) ([]byte, *apiError) {
	var id string
	if err := readFields(msg, func(num int, f field) { id = stringField(id, num, 1, f) }); err != nil {
		return nil, err
	}
	revoked, apiErr := s.revokeUserSessions(id)
	if apiErr != nil {
		return nil, apiErr
	}
	var out []byte
	for _, ses := range revoked {
		out = appendBytes(out, 1, appendRevoked(nil, revokedOf(ses)))
	}
	return appendVarint(out, 2, uint64(len(revoked))), nil
}

func (s *Server) grpcGetUserSessions(msg []byte) ([]byte, *apiError) {
	var q sessionQuery
	var filter []byte
	err := readFields(msg, func(num int, f field) {
		switch {
		case num == 1 && f.bytes != nil:
			q.userID = string(f.bytes)
		case num == 2 && f.wire == wireVarint:
			q.pageSize = int(min(f.varint, 1000))
		case num == 3 && f.bytes != nil:
			q.pageToken = string(f.bytes)
		case num == 4 && f.bytes != nil:
			filter = f.bytes
		}
	})
	if err == nil && filter != nil {
		err = readFields(filter, func(num int, f field) {
			switch {
			case num == 1 && f.bytes != nil:
				q.statuses = append(q.statuses, string(f.bytes))
			case num == 2 && f.bytes != nil:
				q.start = readTimestamp(f.bytes)
			case num == 3 && f.bytes != nil:
				q.end = readTimestamp(f.bytes)
			}
		})
	}
	if err != nil {
		return nil, err
	}
	page, apiErr := s.userSessionPage(q)
	if apiErr != nil {
		return nil, apiErr
	}
	var out []byte
	for _, ses := range page.sessions {
		out = appendBytes(out, 1, appendSessionDetails(nil, detailsOf(ses)))
	}
	out = appendString(out, 2, page.next)
	out = appendString(out, 3, page.prev)
	return appendVarint(out, 4, uint64(page.total)), nil
}

// appendSessionDetails encodes scalekit.v1.sessions.SessionDetails.
func appendSessionDetails(b []byte, d sessionDetails) []byte {
	b = appendString(b, 1, d.SessionID)
	b = appendString(b, 2, d.UserID)
	for _, org := range d.AuthenticatedOrganizations {
		b = appendBytes(b, 3, []byte(org))
	}
	b = appendString(b, 4, d.OrganizationID)
	b = appendTimestamp(b, 5, d.CreatedAt)
	b = appendTimestamp(b, 6, d.UpdatedAt)
	b = appendTimestamp(b, 7, d.IdleExpiresAt)
	b = appendTimestamp(b, 8, d.AbsoluteExpiresAt)
	b = appendTimestamp(b, 9, d.ExpiredAt)
	b = appendTimestamp(b, 10, d.LogoutAt)
	b = appendString(b, 11, d.Status)
	var dev []byte
	dev = appendString(dev, 12, d.Device.UserAgent)
	dev = appendString(dev, 13, d.Device.OS)
	dev = appendString(dev, 14, d.Device.OSVersion)
	dev = appendString(dev, 15, d.Device.Browser)
	dev = appendString(dev, 16, d.Device.BrowserVersion)
	dev = appendString(dev, 17, d.Device.DeviceType)
	dev = appendString(dev, 19, d.Device.IP)
	var loc []byte
	loc = appendString(loc, 1, d.Device.Location.Region)
	loc = appendString(loc, 2, d.Device.Location.RegionSubdivision)
	loc = appendString(loc, 3, d.Device.Location.City)
	loc = appendString(loc, 4, d.Device.Location.Latitude)
	loc = appendString(loc, 5, d.Device.Location.Longitude)
	dev = appendBytes(dev, 20, loc) // Location, present even when empty
	b = appendBytes(b, 12, dev)
	b = appendTimestamp(b, 13, d.LastActiveAt)
	for _, c := range d.AuthenticatedClients {
		var m []byte
		m = appendString(m, 1, c.ClientID)
		m = appendString(m, 2, c.OrganizationID)
		b = appendBytes(b, 14, m)
	}
	return b
}

// appendRevoked encodes scalekit.v1.sessions.RevokedSessionDetails.
func appendRevoked(b []byte, r revokedDetails) []byte {
	b = appendString(b, 1, r.SessionID)
	b = appendString(b, 2, r.UserID)
	b = appendTimestamp(b, 5, r.CreatedAt)
	b = appendTimestamp(b, 6, r.UpdatedAt)
	b = appendTimestamp(b, 7, r.IdleExpiresAt)
	b = appendTimestamp(b, 8, r.AbsoluteExpiresAt)
	b = appendTimestamp(b, 9, r.ExpiredAt)
	b = appendTimestamp(b, 10, r.LogoutAt)
	b = appendString(b, 11, r.Status)
	return appendTimestamp(b, 12, r.LastActiveAt)
}

// The protobuf wire format, as far as these messages need it.

const (
	wireVarint = 0
	wireI64    = 1
	wireBytes  = 2
	wireI32    = 5
)

func appendTag(b []byte, num, wire int) []byte {
	return binary.AppendUvarint(b, uint64(num)<<3|uint64(wire))
}

// appendVarint writes a varint field, leaving out a zero as proto3 does.
func appendVarint(b []byte, num int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return binary.AppendUvarint(appendTag(b, num, wireVarint), v)
}

// appendBytes writes a length-delimited field: a string, bytes or an
// embedded message (written even when empty, so a present message stays
// present).
func appendBytes(b []byte, num int, v []byte) []byte {
	b = binary.AppendUvarint(appendTag(b, num, wireBytes), uint64(len(v)))
	return append(b, v...)
}

// appendString writes a string field, leaving out "" as proto3 does.
func appendString(b []byte, num int, v string) []byte {
	if v == "" {
		return b
	}
	return appendBytes(b, num, []byte(v))
}

// appendTimestamp writes a google.protobuf.Timestamp, or nothing for nil.
func appendTimestamp(b []byte, num int, t *time.Time) []byte {
	if t == nil {
		return b
	}
	var m []byte
	m = appendVarint(m, 1, uint64(t.Unix()))
	m = appendVarint(m, 2, uint64(t.Nanosecond()))
	return appendBytes(b, num, m)
}

func readTimestamp(msg []byte) time.Time {
	var sec, nsec int64
	readFields(msg, func(num int, f field) {
		switch {
		case num == 1 && f.wire == wireVarint:
			sec = int64(f.varint)
		case num == 2 && f.wire == wireVarint:
			nsec = int64(int32(f.varint))
		}
	})
	return time.Unix(sec, nsec)
}

// field is one decoded field: a varint or the bytes of a length-delimited
// one (fixed-width fields are skipped).
type field struct {
	wire   int
	varint uint64
	bytes  []byte
}

func stringField(cur string, num, want int, f field) string {
	if num == want && f.wire == wireBytes {
		return string(f.bytes)
	}
	return cur
}

// readFields walks a message, calling fn for each field it can read;
// unknown fields are skipped, as protobuf requires.
func readFields(msg []byte, fn func(num int, f field)) *apiError {
	bad := &apiError{codeInvalidArgument, "malformed request message"}
	for len(msg) > 0 {
		tag, n := binary.Uvarint(msg)
		if n <= 0 || tag>>3 == 0 {
			return bad
		}
		msg = msg[n:]
		num, wire := int(tag>>3), int(tag&7)
		f := field{wire: wire}
		switch wire {
		case wireVarint:
			if f.varint, n = binary.Uvarint(msg); n <= 0 {
				return bad
			}
			msg = msg[n:]
		case wireBytes:
			size, n := binary.Uvarint(msg)
			if n <= 0 || size > uint64(len(msg)-n) {
				return bad
			}
			f.bytes, msg = msg[n:n+int(size)], msg[n+int(size):]
			if f.bytes == nil {
				f.bytes = []byte{}
			}
		case wireI64, wireI32:
			size := 8
			if wire == wireI32 {
				size = 4
			}
			if len(msg) < size {
				return bad
			}
			msg = msg[size:]
			continue
		default:
			return bad
		}
		fn(num, f)
	}
	return nil
}
