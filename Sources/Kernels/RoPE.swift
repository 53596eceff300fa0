import Foundation

/// Rotary position embedding, a true rotation of each interleaved pair (x_{2i}, x_{2i+1}) of every head by
/// θ = t · base^(−2i/headDim) at position t. The table is built once per (context, headDim).
public final class RoPETable: @unchecked Sendable {
    public let context: Int, headDim: Int, base: Double
    let cosTable: UnsafeMutablePointer<Float>  // [context, headDim/2]
    let sinTable: UnsafeMutablePointer<Float>

    public init(context: Int, headDim: Int, base: Double = 10000) {
        precondition(headDim % 2 == 0 && headDim > 0 && context > 0, "RoPE needs an even head dimension")
        self.context = context; self.headDim = headDim; self.base = base
        let half = headDim / 2
        cosTable = .allocate(capacity: context * half)
        sinTable = .allocate(capacity: context * half)
        for t in 0..<context {
            for i in 0..<half {
                // Angles in Double so long contexts keep their precision.
                let theta = Double(t) * pow(base, -2 * Double(i) / Double(headDim))
                cosTable[t * half + i] = Float(cos(theta))
                sinTable[t * half + i] = Float(sin(theta))
            }
        }
    }

    deinit {
        cosTable.deallocate()
        sinTable.deallocate()
    }
}

public enum RoPE {
    /// Rotates x in place. x: [rows, ld] with `heads` heads of `table.headDim` starting at column 0; row r is
    /// at position `positionOffset + r % context` (context = rows per sequence). Forward when `inverse` is
    /// false; the backward pass is the inverse rotation of the incoming gradient.
    public static func rotate(
        _ x: UnsafeMutablePointer<Float>, ld: Int, rows: Int, heads: Int, context: Int,
        positionOffset: Int = 0, table: RoPETable, inverse: Bool = false
    ) {
        let half = table.headDim / 2, dk = table.headDim
        precondition(positionOffset + min(rows, context) <= table.context, "RoPE position past the table")
        let sign: Float = inverse ? -1 : 1
        Threads.parallelFor(rows, workPerItem: 8 * heads * dk * Threads.computeHeavy) { _, range in
            for r in range {
                let t = positionOffset + r % context
                let c = table.cosTable + t * half, s = table.sinTable + t * half
                for h in 0..<heads {
                    let xh = x + r * ld + h * dk
                    for i in 0..<half {
                        let x0 = xh[2 * i], x1 = xh[2 * i + 1]
                        let ci = c[i], si = s[i] * sign
                        xh[2 * i] = x0 * ci - x1 * si
                        xh[2 * i + 1] = x0 * si + x1 * ci
                    }
                }
            }
        }
    }
}
