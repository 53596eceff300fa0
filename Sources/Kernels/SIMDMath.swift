// SIMD building blocks shared by the row kernels. Notes from measuring Swift 6.3 on this machine (design §5):
// unaligned loads through UnsafeRawPointer are the fast way in; pointwiseMin/Max are scalar loops, so min/max
// use masks; scalar float reductions never vectorise, so sums use SIMD accumulators and one `.sum()` at the end.

public typealias F32x16 = SIMD16<Float>

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> F32x16 {
    UnsafeRawPointer(p).loadUnaligned(as: F32x16.self)
}

@inline(__always) func load16(_ p: UnsafeMutablePointer<Float>) -> F32x16 {
    UnsafeRawPointer(p).loadUnaligned(as: F32x16.self)
}

@inline(__always) func store16(_ v: F32x16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F32x16.self)
}

@inline(__always) func vmax(_ a: F32x16, _ b: F32x16) -> F32x16 { a.replacing(with: b, where: a .< b) }

/// e^x for 16 lanes: Cody–Waite reduction x = n·ln2 + r and Cephes' degree-6 polynomial for e^r
/// (max relative error ≈ 1.2e-7 against libm on [-87, 88]). Inputs are clamped to [-87.33, 88]
/// (results below 2^-126 flush to ~1e-38, which is harmless for softmax); NaN propagates.
@inline(__always) public func exp16(_ x: F32x16) -> F32x16 {
    let hi = F32x16(repeating: 88.0)
    let lo = F32x16(repeating: -87.33654)
    var xc = x.replacing(with: hi, where: x .> hi)
    xc = xc.replacing(with: lo, where: xc .< lo)
    let magic = F32x16(repeating: 12582912.0)  // 1.5·2^23: adding it rounds to an integer held in the low bits
    let nb = xc * 1.44269504088896341 + magic
    let n = nb - magic
    let r = xc - n * 0.693359375 + n * 2.12194440e-4
    var p = F32x16(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let e = p * (r * r) + r + 1
    let bits = unsafeBitCast(nb, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let scale = unsafeBitCast((bits &+ 127) &<< 23, to: F32x16.self)
    let result = e * scale
    return result.replacing(with: x, where: x .!= x)
}

/// The logistic sigmoid 1/(1+e^-x) for 16 lanes.
@inline(__always) public func sigmoid16(_ x: F32x16) -> F32x16 {
    1 / (1 + exp16(-x))
}

/// ⟨a, b⟩ over n floats with two SIMD accumulators, whose lanes `laneSum` adds up: the standard library's `sum()`
/// by default, or `treeSum` for the many short dot products of decoding's attention.
@inline(__always) func dot(
    _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int, laneSum: (F32x16) -> Float = { $0.sum() }
) -> Float {
    var acc0 = F32x16(), acc1 = F32x16()
    var i = 0
    while i + 32 <= n {
        acc0 += load16(a + i) * load16(b + i)
        acc1 += load16(a + i + 16) * load16(b + i + 16)
        i += 32
    }
    if i + 16 <= n {
        acc0 += load16(a + i) * load16(b + i)
        i += 16
    }
    var s = laneSum(acc0 + acc1)
    while i < n {
        s += a[i] * b[i]
        i += 1
    }
    return s
}

/// The sum of v's lanes as a tree (lane j + j + 8, then j + 4, j + 2, j + 1): four dependent adds, where `sum()`
/// (the standard library's) chains sixteen, one after another, which a short dot product waits on.
@inline(__always) func treeSum(_ v: F32x16) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    let c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}

/// y[i] = x[i] · s (x may equal y).
@inline(__always) func scale(_ x: UnsafePointer<Float>, _ s: Float, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n {
        store16(load16(x + i) * s, y + i)
        i += 16
    }
    while i < n {
        y[i] = x[i] * s
        i += 1
    }
}

/// Σ x² over n floats, in Float SIMD accumulators per 4096-element block and Double across blocks.
@inline(__always) func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
    var total = 0.0
    var start = 0
    while start < n {
        let end = min(n, start + 4096)
        total += Double(dot(x + start, x + start, end - start))
        start = end
    }
    return total
}

/// The largest of x[0..<count] (−∞ when count is 0): SIMD lanes, then the tail.
@inline(__always) func rowMax(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var vm = F32x16(repeating: -Float.infinity)
    var i = 0
    while i + 16 <= count { vm = vmax(vm, load16(x + i)); i += 16 }
    var m = vm.max()
    while i < count { m = max(m, x[i]); i += 1 }
    return m
}
