/// Token embedding lookup and its gradient.
public enum Embedding {
    /// out[i, :] = table[ids[i], :]. table: [vocab, dim]; ids: [count]; out: [count, dim].
    public static func forward(
        table: UnsafePointer<Float>, ids: UnsafePointer<Int32>, count: Int, dim: Int, vocab: Int,
        _ out: UnsafeMutablePointer<Float>
    ) {
        for i in 0..<count {
            let id = Int(ids[i])
            precondition(id >= 0 && id < vocab, "token id out of range")
            (out + i * dim).update(from: table + id * dim, count: dim)
        }
    }

    /// dtable[ids[i], :] += dout[i, :] (repeated ids accumulate; serial, so no two writers collide).
    public static func backward(
        _ dout: UnsafePointer<Float>, ids: UnsafePointer<Int32>, count: Int, dim: Int, vocab: Int,
        dtable: UnsafeMutablePointer<Float>
    ) {
        for i in 0..<count {
            let id = Int(ids[i])
            precondition(id >= 0 && id < vocab, "token id out of range")
            let src = dout + i * dim, dst = dtable + id * dim
            var c = 0
            while c + 16 <= dim { store16(load16(dst + c) + load16(src + c), dst + c); c += 16 }
            while c < dim { dst[c] += src[c]; c += 1 }
        }
    }
}
