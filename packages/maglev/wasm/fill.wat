;; Maglev table population, the fill loop of NSDI'16 §3.4 Pseudocode 1, in WebAssembly.
;; Source of src/fill-wasm.ts's embedded bytes: `npm run wasm -w @l4fleet/maglev` (wat2wasm, Debian's wabt) rebuilds
;; them. Same algorithm and the same turn order as the TypeScript loops in src/fill.ts, which a test compares
;; slot by slot. Memory layout (byte offsets passed in by the caller):
;;   table  i32[size]   pre-filled with -1 (no owner)
;;   cursor i32[2n]     per backend k: [2k] the slot it tries next, [2k+1] its skip
;;   owner  i32[n]      the index, in the caller's backend list, written into the table
;;   rate   f64[n]      weight / maxWeight (weighted fill only)
;;   credit f64[n]      zeroed (weighted fill only)
;;   turns  i32[size]   the backend k of each turn in order (claimTurns only)
(module
  (memory (export "memory") 1)

  ;; Equal weights: round robin of turns until all `size` slots are owned.
  (func (export "fillUniform") (param $table i32) (param $cursor i32) (param $owner i32) (param $n i32)
                               (param $size i32)
    (local $filled i32) (local $k i32) (local $cp i32) (local $p i32) (local $s i32)
    (loop $round
      (local.set $k (i32.const 0))
      (loop $turn
        ;; claim: backend k takes its next free preferred slot (inlined: no call in the hot loop)
        (local.set $cp (i32.add (local.get $cursor) (i32.shl (local.get $k) (i32.const 3))))
        (local.set $p (i32.load (local.get $cp)))
        (local.set $s (i32.load offset=4 (local.get $cp)))
        (block $free
          (loop $probe
            (br_if $free (i32.eq (i32.load (i32.add (local.get $table) (i32.shl (local.get $p) (i32.const 2))))
                                 (i32.const -1)))
            (local.set $p (i32.add (local.get $p) (local.get $s)))
            (if (i32.ge_u (local.get $p) (local.get $size))
              (then (local.set $p (i32.sub (local.get $p) (local.get $size)))))
            (br $probe)))
        (i32.store (i32.add (local.get $table) (i32.shl (local.get $p) (i32.const 2)))
                   (i32.load (i32.add (local.get $owner) (i32.shl (local.get $k) (i32.const 2)))))
        (local.set $p (i32.add (local.get $p) (local.get $s)))
        (if (i32.ge_u (local.get $p) (local.get $size))
          (then (local.set $p (i32.sub (local.get $p) (local.get $size)))))
        (i32.store (local.get $cp) (local.get $p))
        (local.set $filled (i32.add (local.get $filled) (i32.const 1)))
        (if (i32.eq (local.get $filled) (local.get $size)) (then (return)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $turn (i32.lt_u (local.get $k) (local.get $n))))
      (br $round)))

  ;; Weighted: each round backend k earns rate[k] credit and takes a turn per whole credit.
  (func (export "fillWeighted") (param $table i32) (param $cursor i32) (param $owner i32) (param $n i32)
                                (param $size i32) (param $rate i32) (param $credit i32)
    (local $filled i32) (local $k i32) (local $c f64) (local $cp i32) (local $cc i32) (local $p i32) (local $s i32)
    (loop $round
      (local.set $k (i32.const 0))
      (loop $turn
        (local.set $cp (i32.add (local.get $credit) (i32.shl (local.get $k) (i32.const 3))))
        (local.set $c (f64.add (f64.load (local.get $cp))
                               (f64.load (i32.add (local.get $rate) (i32.shl (local.get $k) (i32.const 3))))))
        (if (f64.lt (local.get $c) (f64.const 1))
          (then (f64.store (local.get $cp) (local.get $c)))
          (else
            (f64.store (local.get $cp) (f64.sub (local.get $c) (f64.const 1)))
            (local.set $cc (i32.add (local.get $cursor) (i32.shl (local.get $k) (i32.const 3))))
            (local.set $p (i32.load (local.get $cc)))
            (local.set $s (i32.load offset=4 (local.get $cc)))
            (block $free
              (loop $probe
                (br_if $free (i32.eq (i32.load (i32.add (local.get $table) (i32.shl (local.get $p) (i32.const 2))))
                                     (i32.const -1)))
                (local.set $p (i32.add (local.get $p) (local.get $s)))
                (if (i32.ge_u (local.get $p) (local.get $size))
                  (then (local.set $p (i32.sub (local.get $p) (local.get $size)))))
                (br $probe)))
            (i32.store (i32.add (local.get $table) (i32.shl (local.get $p) (i32.const 2)))
                       (i32.load (i32.add (local.get $owner) (i32.shl (local.get $k) (i32.const 2)))))
            (local.set $p (i32.add (local.get $p) (local.get $s)))
            (if (i32.ge_u (local.get $p) (local.get $size))
              (then (local.set $p (i32.sub (local.get $p) (local.get $size)))))
            (i32.store (local.get $cc) (local.get $p))
            (local.set $filled (i32.add (local.get $filled) (i32.const 1)))
            (if (i32.eq (local.get $filled) (local.get $size)) (then (return)))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $turn (i32.lt_u (local.get $k) (local.get $n))))
      (br $round)))

  ;; Turns given in order (src/fill-events.ts schedules them): turn i is backend turns[i]'s claim. `size` turns fill
  ;; the table, each claiming one slot.
  (func (export "claimTurns") (param $table i32) (param $cursor i32) (param $owner i32) (param $size i32)
                              (param $turns i32)
    (local $i i32) (local $k i32) (local $cp i32) (local $p i32) (local $s i32)
    (loop $turn
      (local.set $k (i32.load (i32.add (local.get $turns) (i32.shl (local.get $i) (i32.const 2)))))
      (local.set $cp (i32.add (local.get $cursor) (i32.shl (local.get $k) (i32.const 3))))
      (local.set $p (i32.load (local.get $cp)))
      (local.set $s (i32.load offset=4 (local.get $cp)))
      (block $free
        (loop $probe
          (br_if $free (i32.eq (i32.load (i32.add (local.get $table) (i32.shl (local.get $p) (i32.const 2))))
                               (i32.const -1)))
          (local.set $p (i32.add (local.get $p) (local.get $s)))
          (if (i32.ge_u (local.get $p) (local.get $size))
            (then (local.set $p (i32.sub (local.get $p) (local.get $size)))))
          (br $probe)))
      (i32.store (i32.add (local.get $table) (i32.shl (local.get $p) (i32.const 2)))
                 (i32.load (i32.add (local.get $owner) (i32.shl (local.get $k) (i32.const 2)))))
      (local.set $p (i32.add (local.get $p) (local.get $s)))
      (if (i32.ge_u (local.get $p) (local.get $size))
        (then (local.set $p (i32.sub (local.get $p) (local.get $size)))))
      (i32.store (local.get $cp) (local.get $p))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $turn (i32.lt_u (local.get $i) (local.get $size)))))
)
