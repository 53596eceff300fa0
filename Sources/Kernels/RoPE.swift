import Foundation

/// Rotary position embedding, a true rotation of each interleaved pair (x_{2i}, x_{2i+1}) of every head by
/// θ = t · base^(−2i/headDim) at position t. The table is built once per (context, headDim).
public final class RoPETable: @unchecked Sendable {
    public let context: Int, headDim: Int, base: Double
    /// Per position, one value per lane of a head, so that a 16-wide vector rotates eight pairs at once:
    /// cos θ_i at 2i and 2i + 1; −sin θ_i at 2i and +sin θ_i at 2i + 1.   [context, headDim]
    let cosLanes: UnsafeMutablePointer<Float>, sinLanes: UnsafeMutablePointer<Float>

    public init(context: Int, headDim: Int, base: Double = 10000) {
        precondition(headDim % 2 == 0 && headDim > 0 && context > 0, "RoPE needs an even head dimension")
        self.context = context; self.headDim = headDim; self.base = base
        let half = headDim / 2
        cosLanes = .allocate(capacity: context * headDim)
        sinLanes = .allocate(capacity: context * headDim)
        for t in 0..<context {
            for i in 0..<half {
                // Angles in Double so long contexts keep their precision.
                let theta = Double(t) * pow(base, -2 * Double(i) / Double(headDim))
                let c = Float(cos(theta)), s = Float(sin(theta)), at = t * headDim + 2 * i
                cosLanes[at] = c; cosLanes[at + 1] = c
                sinLanes[at] = -s; sinLanes[at + 1] = s
            }
        }
    }

    deinit {
        cosLanes.deallocate()
        sinLanes.deallocate()
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
        let dk = table.headDim
        precondition(positionOffset + min(rows, context) <= table.context, "RoPE position past the table")
        Threads.parallelFor(rows, workPerItem: 8 * heads * dk * Threads.computeHeavy) { _, range in
            for r in range {
                for h in 0..<heads {
                    let xh = x + r * ld + h * dk
                    rotateHead(xh, xh, position: positionOffset + r % context, table: table, inverse: inverse)
                }
            }
        }
    }

    /// One head at position t rotated (or rotated back, with `inverse`) from x into y (which may be x):
    ///   (y_2i, y_2i+1) = (x_2i·cos θ_i − x_2i+1·sin θ_i, x_2i·sin θ_i + x_2i+1·cos θ_i),
    /// 16 lanes at a time as x ⊙ cos + swap(x) ⊙ ±sin, swap exchanging each pair (one vpermilps): the same
    /// products and sums, so the same bits as the pair-by-pair form that finishes an odd tail.
    @inline(__always)
    static func rotateHead(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, position t: Int, table: RoPETable, inverse: Bool
    ) {
        let dk = table.headDim
        let c = table.cosLanes + t * dk, s = table.sinLanes + t * dk
        var i = 0
        while i + 16 <= dk {
            let v = load16(x + i)
            let swapped = F32x16(
                v[1], v[0], v[3], v[2], v[5], v[4], v[7], v[6], v[9], v[8], v[11], v[10], v[13], v[12], v[15], v[14])
            let sv = inverse ? -load16(s + i) : load16(s + i)
            store16(v * load16(c + i) + swapped * sv, y + i)
            i += 16
        }
        while i < dk {
            let x0 = x[i], x1 = x[i + 1], ci = c[i], si = inverse ? -s[i + 1] : s[i + 1]
            y[i] = x0 * ci - x1 * si
            y[i + 1] = x0 * si + x1 * ci
            i += 2
        }
    }
}
