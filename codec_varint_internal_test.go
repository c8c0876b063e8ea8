package logout
import ("testing";"encoding/binary")
func TestUvarintMatchesStd(t *testing.T) {
	for _, v := range []uint64{0,1,127,128,300,1<<35,1<<63,^uint64(0)} {
		b := binary.AppendUvarint(nil, v)
		d := decoder{b: string(b)}
		if got := d.uvarint(); got != v || d.bad { t.Errorf("%d: got %d bad %v", v, got, d.bad) }
	}
	for _, v := range []int64{0,-1,1,-1<<40,1<<62,-1<<63} {
		b := binary.AppendVarint(nil, v)
		d := decoder{b: string(b)}
		if got := d.varint(); got != v || d.bad { t.Errorf("%d: got %d", v, got) }
	}
	for _, bad := range []string{"", "\x80", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"} {
		d := decoder{b: bad}
		d.uvarint()
		if !d.bad { t.Errorf("%q accepted", bad) }
	}
}
