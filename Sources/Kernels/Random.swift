import Foundation

/// SplitMix64: a tiny, portable, seedable generator. The same seed gives the same stream on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable, Equatable, Codable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    @inline(__always) public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A standard normal draw (Box–Muller in Double), scaled by `std`.
    public mutating func normal(std: Double = 1) -> Double {
        let u1 = max(Double(next() >> 11) * 0x1p-53, 1e-300)
        let u2 = Double(next() >> 11) * 0x1p-53
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2) * std
    }
    /// A uniform Double in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }
    /// A uniform integer in 0..<bound (Lemire's multiply-shift; the bias is below 2⁻³² for our bounds).
    @inline(__always) public mutating func below(_ bound: Int) -> Int {
        Int(next().multipliedFullWidth(by: UInt64(bound)).high)
    }
}
