/// The per-route claim requirements (`require_claims`) and identity-header values.
public enum ClaimPolicy {
    /// Whether `claims` satisfy every requirement: a string claim must equal one of the accepted
    /// values, an array claim must contain one of them; numbers and booleans compare by their
    /// JSON text (`true`, `42`). A missing claim never satisfies a requirement.
    public static func allows(_ claims: JSONObject, requirements: [(claim: String, values: [String])]) -> Bool {
        requirements.allSatisfy { requirement in
            guard let value = claims[requirement.claim] else { return false }
            switch value {
            case .array(let elements):
                return elements.contains { Self.matches($0, requirement.values) }
            default:
                return Self.matches(value, requirement.values)
            }
        }
    }

    private static func matches(_ value: JSONValue, _ accepted: [String]) -> Bool {
        switch value {
        case .string(let string): accepted.contains(string)
        case .number, .bool: accepted.contains(value.compactText)
        case .null, .array, .object: false
        }
    }

    /// The header value for a claim: strings as they are, arrays joined by `,`, objects and
    /// numbers as compact JSON. Returns nil when the value cannot be carried in a header
    /// (control characters, which would otherwise split or smuggle headers).
    public static func headerValue(for value: JSONValue) -> String? {
        let text: String
        switch value {
        case .string(let string): text = string
        case .array(let elements):
            text = elements.map { element in
                if case .string(let string) = element { return string }
                return element.compactText
            }.joined(separator: ",")
        default: text = value.compactText
        }
        for byte in text.utf8 where (byte < 0x20 && byte != 0x09) || byte == 0x7F {
            return nil
        }
        return text
    }
}
