import CBLAS
import Foundation
import Kernels

/// Statistics of a set of values.
public struct Stats: Codable, Sendable, Equatable {
    public var mean: Double, std: Double, min: Double, max: Double
    public init(_ v: [Double]) {
        let n = Double(Swift.max(1, v.count))
        mean = v.reduce(0, +) / n
        let m = mean
        std = (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / n).squareRoot()
        min = v.min() ?? .nan
        max = v.max() ?? .nan
    }
}

/// Geometry of a set of row vectors (embeddings, hidden states).
public enum Geometry {
    /// Row L2 norms of a [rows, cols] matrix.
    public static func rowNorms(_ x: UnsafePointer<Float>, rows: Int, cols: Int) -> [Double] {
        (0..<rows).map { r in
            var s = 0.0
            for c in 0..<cols { let v = Double(x[r * cols + c]); s += v * v }
            return s.squareRoot()
        }
    }

    /// Rows scaled to unit length (zero rows stay zero).
    public static func normalized(_ x: UnsafePointer<Float>, rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        out.withUnsafeMutableBufferPointer {
            RowNorm.l2Forward(x, $0.baseAddress.unsafelyUnwrapped, invNorm: nil, rows: rows, cols: cols)
        }
        return out
    }

    /// Pairwise cosine similarities of unit rows, i < j: the Gram matrix through the GEMM seam (fine for the
    /// vocab sizes used here: 4096 rows make a 64 MB Gram matrix).
    public struct PairwiseCosines: Codable, Sendable {
        public var mean: Double, std: Double
        /// Wang & Isola's uniformity, log E_{i≠j} exp(−t‖x_i − x_j‖²) with t = 2 (= log E exp(−4 + 4·cos) for unit
        /// rows).
        public var uniformity: Double
        /// Histogram of the cosines over [−1, 1] in `bins` equal bins (fractions of all pairs).
        public var histogram: [Double]
    }

    public static func pairwise(unitRows x: [Float], rows: Int, cols: Int, bins: Int = 40) -> PairwiseCosines {
        var gram = [Float](repeating: 0, count: rows * rows)
        x.withUnsafeBufferPointer { xp in
            gram.withUnsafeMutableBufferPointer { g in
                GEMM.xwT(
                    xp.baseAddress.unsafelyUnwrapped, xp.baseAddress.unsafelyUnwrapped, g.baseAddress.unsafelyUnwrapped,
                    m: rows, k: cols, n: rows)
            }
        }
        var sum = 0.0, sumSq = 0.0, expSum = 0.0, count = 0.0
        var hist = [Double](repeating: 0, count: bins)
        for i in 0..<rows {
            for j in (i + 1)..<rows where i + 1 < rows {
                let c = Double(max(-1, min(1, gram[i * rows + j])))
                sum += c; sumSq += c * c; count += 1
                expSum += exp(-4 + 4 * c)
                hist[min(bins - 1, Int((c + 1) / 2 * Double(bins)))] += 1
            }
        }
        let mean = sum / max(1, count)
        return PairwiseCosines(
            mean: mean, std: max(0, sumSq / max(1, count) - mean * mean).squareRoot(),
            uniformity: log(expSum / max(1, count)), histogram: hist.map { $0 / max(1, count) })
    }

    /// Wang & Isola's alignment, E‖x − y‖² (α = 2) over given positive pairs of unit rows.
    public static func alignment(unitRows x: [Float], cols: Int, pairs: [(Int, Int)]) -> Double {
        guard !pairs.isEmpty else { return .nan }
        var total = 0.0
        for (i, j) in pairs {
            var s = 0.0
            for c in 0..<cols { let d = Double(x[i * cols + c] - x[j * cols + c]); s += d * d }
            total += s
        }
        return total / Double(pairs.count)
    }

    /// The k rows most cosine-similar to row `i` (excluding itself), best first.
    public static func nearest(unitRows x: [Float], rows: Int, cols: Int, to i: Int, k: Int) -> [(
        row: Int, cosine: Double
    )] {
        var scored: [(Int, Double)] = []
        for j in 0..<rows where j != i {
            var s = 0.0
            for c in 0..<cols { s += Double(x[i * cols + c]) * Double(x[j * cols + c]) }
            scored.append((j, s))
        }
        return scored.sorted { $0.1 > $1.1 }.prefix(k).map { (row: $0.0, cosine: $0.1) }
    }

    /// Singular values of a [rows, cols] matrix (descending), by LAPACK's dgesdd (divide and conquer, values only)
    /// from the OpenBLAS package.
    public static func singularValues(_ a: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int? = nil) -> [Double] {
        let lda = ld ?? cols
        // LAPACK is column-major: the row-major [rows, cols] matrix is its transpose, which has the same singular
        // values.
        var m = Int32(cols), n = Int32(rows)
        var data = [Double](repeating: 0, count: rows * cols)
        for r in 0..<rows { for c in 0..<cols { data[r * cols + c] = Double(a[r * lda + c]) } }
        var s = [Double](repeating: 0, count: min(rows, cols))
        var ldaL = m, ldu: Int32 = 1, ldvt: Int32 = 1, info: Int32 = 0
        var u = [Double](repeating: 0, count: 1), vt = [Double](repeating: 0, count: 1)
        var iwork = [Int32](repeating: 0, count: 8 * min(rows, cols))
        var job = CChar(UInt8(ascii: "N"))
        var lwork: Int32 = -1
        var query = [Double](repeating: 0, count: 1)
        dgesdd_(&job, &m, &n, &data, &ldaL, &s, &u, &ldu, &vt, &ldvt, &query, &lwork, &iwork, &info)
        lwork = Int32(max(1, query[0]))
        var work = [Double](repeating: 0, count: Int(lwork))
        dgesdd_(&job, &m, &n, &data, &ldaL, &s, &u, &ldu, &vt, &ldvt, &work, &lwork, &iwork, &info)
        return info == 0 ? s : []
    }

    /// σ_max / σ_min (infinite when σ_min is 0).
    public static func conditionNumber(_ s: [Double]) -> Double {
        guard let hi = s.first, let lo = s.last else { return .nan }
        return lo > 0 ? hi / lo : .infinity
    }
}
