import CRowKernels
import Foundation

/// Fused softmax + cross-entropy over rows of logits, with the gradient of the mean loss.
public enum CrossEntropy {
    /// logits: [rows, vocab]; targets: [rows], each in 0..<vocab.
    /// Returns Σ_rows loss_r (the caller divides for the mean); losses[r] receives each row's loss when given.
    /// When dlogits is given (it may be `logits` itself) it receives (softmax − onehot) · gradScale,
    /// i.e. the gradient of gradScale · Σ loss — pass gradScale = 1/rows for the mean.
    public static func forwardBackward(
        logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, rows: Int, vocab: Int,
        losses: UnsafeMutablePointer<Float>? = nil,
        dlogits: UnsafeMutablePointer<Float>? = nil, gradScale: Float = 1
    ) -> Double {
        forwardBackward(
            logits: logits, targets: targets, rows: rows, vocab: vocab, losses: losses,
            gradient: dlogits.map { GEMM.Operand($0) }, gradScale: gradScale)
    }

    /// The same with the gradient as stored for the products that read it (the output head's: `GEMM.Operand`).
    /// Its rows are `vocab` Floats apart either way: a bf16 row is the first half of its Float row, which holds
    /// the exponentials until then, so the gradient may overwrite the logits in place in either form.
    public static func forwardBackward(
        logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, rows: Int, vocab: Int,
        losses: UnsafeMutablePointer<Float>? = nil, gradient: GEMM.Operand?, gradScale: Float = 1
    ) -> Double {
        // One partial sum per fixed block of rows, added in block order: the same total on any number of threads.
        var partial = [Double](repeating: 0, count: (rows + Threads.reductionBlock - 1) / Threads.reductionBlock)
        partial.withUnsafeMutableBufferPointer { partialSums in
            let sums = partialSums.baseAddress.unsafelyUnwrapped
            Threads.forEachBlock(rows, blockSize: Threads.reductionBlock, workPerItem: 8 * vocab * Threads.computeHeavy)
            { block, range in
                var total = 0.0
                for r in range {
                    let x = logits + r * vocab
                    let target = Int(targets[r])
                    precondition(target >= 0 && target < vocab, "target id out of range")
                    // Pass 1: max.
                    let m = rowMax(x, count: vocab)
                    let vmx = F32x16(repeating: m)
                    let xt = x[target]
                    // Pass 2: Σ exp(x − max), keeping the exponentials in dlogits when there is one.
                    var acc = F32x16()
                    var i = 0
                    if let g = gradient {
                        let d = g.address.assumingMemoryBound(to: Float.self) + r * vocab
                        while i + 16 <= vocab {
                            let e = exp16(load16(x + i) - vmx); store16(e, d + i); acc += e; i += 16
                        }
                        var s = acc.sum()
                        while i < vocab { let e = expf(x[i] - m); d[i] = e; s += e; i += 1 }
                        // Pass 3: normalise and subtract the one-hot (in bf16: the row rounded in place, then
                        // its target entry from the Float it would have had).
                        let factor = gradScale / s
                        if g.isBF16 {
                            let et = d[target]
                            ngpt_scale_to_bf16(d, factor, UnsafeMutableRawPointer(d), vocab)
                            UnsafeMutableRawPointer(d).storeBytes(
                                of: BFloat16.round(et * factor - gradScale), toByteOffset: 2 * target, as: UInt16.self)
                        } else {
                            scale(d, factor, d, vocab)
                            d[target] -= gradScale
                        }
                        // The row loss in Double: the caller's mean should not be quantised to Float's ulp.
                        let loss = log(Double(s)) + Double(m) - Double(xt)
                        losses?[r] = Float(loss)
                        total += loss
                    } else {
                        while i + 16 <= vocab { acc += exp16(load16(x + i) - vmx); i += 16 }
                        var s = acc.sum()
                        while i < vocab { s += expf(x[i] - m); i += 1 }
                        let loss = log(Double(s)) + Double(m) - Double(xt)
                        losses?[r] = Float(loss)
                        total += loss
                    }
                }
                sums[block] = total
            }
        }
        return partial.reduce(0, +)
    }
}
