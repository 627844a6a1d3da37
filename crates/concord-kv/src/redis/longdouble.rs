//! `INCRBYFLOAT`'s and `HINCRBYFLOAT`'s arithmetic, exactly as redis-server does it: in C's
//! `long double`.
//!
//! On x86-64 Linux, `long double` is the x87 80-bit extended format: a 64-bit significand and a
//! 15-bit exponent. redis-server parses the stored value and the increment with `strtold`, adds
//! them in that format and prints the sum with `%.17Lf`, trailing zeros removed ([`increment`],
//! which both commands use). So `INCRBYFLOAT k 0.1` on a key holding `0.2` answers `0.3` (an
//! `f64` sum would print `0.30000000000000004`), `1e30` answers
//! `1000000000000000000024696061952`, `1e-20` answers `0`, and `5.0e3` on `10.6` answers
//! `5010.60000000000000009` (the 64-bit significand's rounding shows in the 17th digit). Rust has no 80-bit float, so this module computes the same roundings with exact
//! integers: every finite value is `m · 2^e`, and each step (parse, add, print) rounds the exact
//! result once, to nearest, ties to even – what the C library does.
//!
//! Accepted input is `strtold`'s as Redis filters it: an optional sign, then decimal digits with an
//! optional point and `e` exponent, hexadecimal (`0x1.8p3`), or `inf` / `infinity`; no spaces,
//! no trailing bytes, no NaN, nothing that overflows or underflows to zero. Subnormals (below
//! about 3.4 · 10^-4932) keep the exponent at its minimum and lose significand bits, as the x87
//! does.

use std::cmp::Ordering;

/// Longest value redis-server parses (`MAX_LONG_DOUBLE_CHARS`).
const MAX_CHARS: usize = 5 * 1024;
/// Significand bits of the x87 format.
const BITS: u32 = 64;
/// The exponent of the smallest subnormal, and of `m` when `m · 2^e` is the largest finite value.
const E_MIN: i64 = -16445;
const E_MAX: i64 = 16384 - 64;

/// A long double: `±m · 2^e`, or an infinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ld {
    Finite { neg: bool, m: u64, e: i64 },
    Inf { neg: bool },
}

/// `current + increment` as redis-server stores and answers it (`%.17Lf`, trailing zeros
/// removed); `None` when the sum is NaN or infinite (Redis: `increment would produce NaN or
/// Infinity`). The parse errors differ between the two commands, so callers parse.
pub fn increment(current: Ld, increment: Ld) -> Option<String> {
    current.plus(increment).filter(|sum| sum.is_finite()).map(Ld::to_human)
}

impl Ld {
    /// Zero, the value of an absent key or field.
    pub const ZERO: Ld = Ld::Finite { neg: false, m: 0, e: 0 };

    /// `strtold` as Redis's `string2ld` accepts it; `None` if Redis would refuse the text.
    pub fn parse(text: &[u8]) -> Option<Ld> {
        if text.is_empty() || text.len() >= MAX_CHARS {
            return None;
        }
        let (neg, rest) = match text[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
            return Some(Ld::Inf { neg });
        }
        let hex = rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x';
        let (radix, rest) = if hex { (16, &rest[2..]) } else { (10, rest) };
        // Mantissa digits, with the point's position.
        let mut digits = Big::zero();
        let (mut any_digit, mut seen_point, mut frac_digits, mut i) = (false, false, 0i64, 0);
        while i < rest.len() {
            let c = rest[i];
            match (c as char).to_digit(radix) {
                Some(d) => {
                    digits.mul_small(radix);
                    digits.add_small(d);
                    any_digit = true;
                    if seen_point {
                        frac_digits += 1;
                    }
                }
                None if c == b'.' && !seen_point => seen_point = true,
                None => break,
            }
            i += 1;
        }
        if !any_digit {
            return None;
        }
        // Exponent: `e` (a power of ten) or, in hex, `p` (a power of two).
        let mut exp: i64 = 0;
        if i < rest.len() {
            let marker = rest[i] | 0x20;
            if marker != if hex { b'p' } else { b'e' } {
                return None;
            }
            let digits_text = std::str::from_utf8(&rest[i + 1..]).ok()?;
            let body = digits_text.strip_prefix(['+', '-']).unwrap_or(digits_text);
            if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Saturate: anything this large over- or underflows anyway.
            exp = digits_text.parse::<i64>().unwrap_or(if digits_text.starts_with('-') {
                -1 << 40
            } else {
                1 << 40
            });
        }
        if digits.is_zero() {
            return Some(Ld::Finite { neg, m: 0, e: 0 });
        }
        let value = if hex {
            let e2 = exp.checked_sub(4 * frac_digits)?;
            if !(-40_000..=40_000).contains(&e2) {
                return None;
            }
            if e2 >= 0 {
                round(neg, &digits.shl(e2 as usize), &Big::one())
            } else {
                round(neg, &digits, &Big::one().shl((-e2) as usize))
            }
        } else {
            let e10 = exp.checked_sub(frac_digits)?;
            // The value is about 10^(digits + e10): far outside 10^±4951, no need to compute.
            let magnitude = digits.bits() as i64 * 3 / 10 + e10;
            if magnitude > 5000 {
                return None;
            }
            if magnitude < -5000 {
                return None; // underflows to zero: strtold's ERANGE, refused
            }
            if e10 >= 0 {
                round(neg, &digits.mul(&Big::pow10(e10 as u32)), &Big::one())
            } else {
                round(neg, &digits, &Big::pow10((-e10) as u32))
            }
        };
        match value {
            Ld::Inf { .. } => None,
            Ld::Finite { m: 0, .. } => None, // a non-zero input that underflowed
            finite => Some(finite),
        }
    }

    pub fn is_finite(self) -> bool {
        matches!(self, Ld::Finite { .. })
    }

    /// `self + other`, rounded once (`inf - inf` has no answer here: `None`, C's NaN).
    pub fn plus(self, other: Ld) -> Option<Ld> {
        let (a, b) = match (self, other) {
            (Ld::Inf { neg: x }, Ld::Inf { neg: y }) => return (x == y).then_some(self),
            (Ld::Inf { .. }, _) => return Some(self),
            (_, Ld::Inf { .. }) => return Some(other),
            (a, b) => (a, b),
        };
        let (Ld::Finite { neg: na, m: ma, e: ea }, Ld::Finite { neg: nb, m: mb, e: eb }) = (a, b) else {
            unreachable!("infinities handled above")
        };
        if ma == 0 && mb == 0 {
            // IEEE: -0 + -0 is -0; any other sum of zeros is +0.
            return Some(Ld::Finite { neg: na && nb, m: 0, e: 0 });
        }
        let low = ea.min(eb);
        let x = Big::from_u64(ma).shl((ea - low) as usize);
        let y = Big::from_u64(mb).shl((eb - low) as usize);
        let (neg, sum) = if na == nb {
            (na, x.add(&y))
        } else {
            match x.cmp(&y) {
                Ordering::Equal => return Some(Ld::ZERO),
                Ordering::Greater => (na, x.sub(&y)),
                Ordering::Less => (nb, y.sub(&x)),
            }
        };
        Some(if low >= 0 {
            round(neg, &sum.shl(low as usize), &Big::one())
        } else {
            round(neg, &sum, &Big::one().shl((-low) as usize))
        })
    }

    /// `%.17Lf` with trailing zeros (and a bare point) removed, `-0` as `0`: Redis's
    /// `ld2string(…, LD_STR_HUMAN)`.
    pub fn to_human(self) -> String {
        let (neg, m, e) = match self {
            Ld::Inf { neg } => return if neg { "-inf".into() } else { "inf".into() },
            Ld::Finite { neg, m, e } => (neg, m, e),
        };
        let scaled = Big::from_u64(m).mul(&Big::pow10(17));
        let fixed =
            if e >= 0 { scaled.shl(e as usize) } else { div_round(&scaled, &Big::one().shl((-e) as usize)) };
        let mut digits = fixed.to_decimal();
        if digits.len() < 18 {
            digits = format!("{}{digits}", "0".repeat(18 - digits.len()));
        }
        let point = digits.len() - 17;
        let text = format!("{}.{}", &digits[..point], &digits[point..]);
        let text = text.trim_end_matches('0').trim_end_matches('.');
        if neg && text != "0" {
            format!("-{text}")
        } else {
            text.to_string()
        }
    }
}

/// `±num/den` rounded to a long double.
fn round(neg: bool, num: &Big, den: &Big) -> Ld {
    if num.is_zero() {
        return Ld::Finite { neg, m: 0, e: 0 };
    }
    // num/den lies in (2^(a-d-1), 2^(a-d+1)); pick e so that num/(den·2^e) has 64 or 65 bits,
    // then settle on 64.
    let mut e = num.bits() as i64 - den.bits() as i64 - BITS as i64;
    if scaled_floor(num, den, e).bits() > BITS as usize {
        e += 1;
    }
    let e = e.max(E_MIN);
    let m = scaled_round(num, den, e);
    let (m, e) = if m.bits() > BITS as usize { (1u64 << 63, e + 1) } else { (m.to_u64(), e) };
    if e > E_MAX {
        return Ld::Inf { neg };
    }
    Ld::Finite { neg, m, e }
}

/// (`num`, `den · 2^e`) with both sides integers.
fn scaled(num: &Big, den: &Big, e: i64) -> (Big, Big) {
    if e >= 0 {
        (num.clone(), den.shl(e as usize))
    } else {
        (num.shl((-e) as usize), den.clone())
    }
}

fn scaled_floor(num: &Big, den: &Big, e: i64) -> Big {
    let (n, d) = scaled(num, den, e);
    n.divmod(&d).0
}

fn scaled_round(num: &Big, den: &Big, e: i64) -> Big {
    let (n, d) = scaled(num, den, e);
    div_round(&n, &d)
}

/// `n / d` rounded to nearest, ties to even.
fn div_round(n: &Big, d: &Big) -> Big {
    let (q, r) = n.divmod(d);
    let twice = r.shl(1);
    match twice.cmp(d) {
        Ordering::Greater => q.add(&Big::one()),
        Ordering::Equal if q.is_odd() => q.add(&Big::one()),
        _ => q,
    }
}

/// A non-negative integer of any size: base-2^32 limbs, least significant first, no high zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn zero() -> Big {
        Big(vec![])
    }

    fn one() -> Big {
        Big(vec![1])
    }

    fn from_u64(x: u64) -> Big {
        let mut big = Big(vec![x as u32, (x >> 32) as u32]);
        big.trim();
        big
    }

    fn to_u64(&self) -> u64 {
        debug_assert!(self.0.len() <= 2);
        self.0.iter().rev().fold(0, |acc, &limb| (acc << 32) | u64::from(limb))
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn is_odd(&self) -> bool {
        self.0.first().is_some_and(|l| l & 1 == 1)
    }

    fn bits(&self) -> usize {
        self.0.last().map_or(0, |top| self.0.len() * 32 - top.leading_zeros() as usize)
    }

    fn mul_small(&mut self, factor: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let value = u64::from(*limb) * u64::from(factor) + carry;
            *limb = value as u32;
            carry = value >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn add_small(&mut self, addend: u32) {
        let mut carry = u64::from(addend);
        for limb in &mut self.0 {
            if carry == 0 {
                break;
            }
            let value = u64::from(*limb) + carry;
            *limb = value as u32;
            carry = value >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn pow10(k: u32) -> Big {
        let mut out = Big::one();
        for _ in 0..k / 9 {
            out.mul_small(1_000_000_000);
        }
        out.mul_small(10u32.pow(k % 9));
        out
    }

    fn mul(&self, other: &Big) -> Big {
        let mut out = vec![0u32; self.0.len() + other.0.len()];
        for (i, &a) in self.0.iter().enumerate() {
            let mut carry = 0u64;
            for (j, &b) in other.0.iter().enumerate() {
                let value = u64::from(out[i + j]) + u64::from(a) * u64::from(b) + carry;
                out[i + j] = value as u32;
                carry = value >> 32;
            }
            out[i + other.0.len()] = carry as u32;
        }
        let mut big = Big(out);
        big.trim();
        big
    }

    fn add(&self, other: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len().max(other.0.len()) + 1);
        let mut carry = 0u64;
        for i in 0..self.0.len().max(other.0.len()) {
            let value =
                u64::from(*self.0.get(i).unwrap_or(&0)) + u64::from(*other.0.get(i).unwrap_or(&0)) + carry;
            out.push(value as u32);
            carry = value >> 32;
        }
        out.push(carry as u32);
        let mut big = Big(out);
        big.trim();
        big
    }

    /// `self - other`, `self >= other`.
    fn sub(&self, other: &Big) -> Big {
        let mut out = self.0.clone();
        let mut borrow = 0i64;
        for (i, limb) in out.iter_mut().enumerate() {
            let value = i64::from(*limb) - i64::from(*other.0.get(i).unwrap_or(&0)) - borrow;
            borrow = i64::from(value < 0);
            *limb = value.rem_euclid(1 << 32) as u32;
        }
        debug_assert_eq!(borrow, 0, "subtrahend larger");
        let mut big = Big(out);
        big.trim();
        big
    }

    fn shl(&self, bits: usize) -> Big {
        if self.is_zero() {
            return Big::zero();
        }
        let (limbs, shift) = (bits / 32, bits % 32);
        let mut out = vec![0u32; limbs];
        let mut carry = 0u32;
        for &limb in &self.0 {
            out.push(if shift == 0 { limb } else { (limb << shift) | carry });
            carry = if shift == 0 { 0 } else { limb >> (32 - shift) };
        }
        out.push(carry);
        let mut big = Big(out);
        big.trim();
        big
    }

    fn bit(&self, i: usize) -> bool {
        self.0.get(i / 32).is_some_and(|limb| limb >> (i % 32) & 1 == 1)
    }

    /// Quotient and remainder, by shift and subtract (the quotients here are small: a long
    /// double's 64 bits, or a printed value's digits).
    fn divmod(&self, d: &Big) -> (Big, Big) {
        assert!(!d.is_zero(), "division by zero");
        if self.cmp(d) == Ordering::Less {
            return (Big::zero(), self.clone());
        }
        let mut rem = Big::zero();
        let mut quotient = vec![0u32; self.0.len()];
        for i in (0..self.bits()).rev() {
            rem = rem.shl(1);
            if self.bit(i) {
                rem.add_small(1);
            }
            if rem.cmp(d) != Ordering::Less {
                rem = rem.sub(d);
                quotient[i / 32] |= 1 << (i % 32);
            }
        }
        let mut q = Big(quotient);
        q.trim();
        (q, rem)
    }

    /// Divide in place by a small number, returning the remainder.
    fn div_small(&mut self, divisor: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let value = (rem << 32) | u64::from(*limb);
            *limb = (value / u64::from(divisor)) as u32;
            rem = value % u64::from(divisor);
        }
        self.trim();
        rem as u32
    }

    fn to_decimal(&self) -> String {
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.div_small(1_000_000_000));
        }
        let mut text = chunks.last().map_or_else(|| "0".to_string(), u32::to_string);
        for chunk in chunks.iter().rev().skip(1) {
            text.push_str(&format!("{chunk:09}"));
        }
        text
    }
}

impl PartialOrd for Big {
    fn partial_cmp(&self, other: &Big) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Big {
    fn cmp(&self, other: &Big) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
}

#[cfg(test)]
mod tests {
    use super::Ld;

    fn incr(value: &str, by: &str) -> String {
        let sum = Ld::parse(value.as_bytes()).unwrap().plus(Ld::parse(by.as_bytes()).unwrap()).unwrap();
        sum.to_human()
    }

    /// Each expected answer is redis-server 7.0's (x86-64), checked by hand.
    #[test]
    fn sums_print_as_redis_servers_long_doubles() {
        assert_eq!(incr("0", "10.5"), "10.5");
        assert_eq!(incr("10.5", "3.0e3"), "3010.5");
        assert_eq!(incr("3010.5", "0.1"), "3010.60000000000000009");
        assert_eq!(incr("0.1", "0.2"), "0.3");
        assert_eq!(incr("5", "1.5"), "6.5");
        assert_eq!(incr("0", "1e-5"), "0.00001");
        assert_eq!(incr("0", "-0.0"), "0");
        assert_eq!(incr("0", "1e20"), "100000000000000000000");
        assert_eq!(incr("0", "1e-20"), "0");
        assert_eq!(incr("0", "5.0e3"), "5000");
        assert_eq!(incr("5000", "1e-30"), "5000");
        assert_eq!(incr("0", "0x10"), "16");
        assert_eq!(incr("0", "1."), "1");
        assert_eq!(incr("1", ".5"), "1.5");
        assert_eq!(incr("0", "1e30"), "1000000000000000000024696061952");
        assert_eq!(incr("1.5", "-1.5"), "0");
        assert_eq!(incr("-2.25", "1"), "-1.25");
        assert_eq!(incr("0", "0x1p-3"), "0.125");
        assert_eq!(incr("0.125", "-0x1.8p1"), "-2.875");
        assert_eq!(incr("0", "1e-4940"), "0", "a subnormal prints as 0");
    }

    #[test]
    fn huge_values_print_every_digit() {
        let once = incr("0", "1e4931");
        assert!(once.starts_with("100000000000000000000601894938796389132383777425453311477378504135253301948660872240753332777943314277366652556366627768206186090644046033662341616493109754210865362373994723782427360775564628207733774677062828108346124470945764363340927284485142091466676540833985649773830675645413703761844047618298286595405404632090829955594232130250332060208007020820362392107915188146020374501477493162049003039499871931261465406408137349324887712089245518638375343919787097804150279771688019395540310772191163864625693948419729312816032948236099699577948922485926403414694908719482079422243368784928456198723013400630541455362632361486447956507939005276198063346364012897969661536254550760830396055383086614559264437228910291860269674176774129715399835926313589798584969763867831058680372002464759306604407032376174743937515194999419152887617227403456123846568953091400249620854748845224921982104921769035924659432618853720084602547693685670772698642580430405368831757238029269088045467785221045879073317742109896534638384553301619296565337753342109755377320210545255958936022773255084354571746971521129302927710064995157927946321287522876870082727462995133158499420324370841219094831561479864172105415839735139574775854832875427053422572136164035622781608009489243336690241745424238262923227754402660964025532555781432158032534035233066061764232669614025723955254912107198518944384677762333488192918977370700840346659520483873362163327338363194485698948413844497838665605875531084883368979189648499884755036426410480080057824551176259469116154573089131974410795389799310100821760126931062989030835789379334434007283778271641052081864009977109440177202473108483586068993653303572685417539619535176809651931094463144592363805321457599337846877529286587143574224977797982277501432447584589961509638007989909953845312104385182134917837173664070264530428425488543761144169036061646636820219430776946220996338769044657669196955157104194128830264891282734519428627112223034782324607349828515370857950006265622271495411332929395334649561594778409117588355498811716738765068152578136186445036499260507912977060479329107655966804115355825476577428883133065867691029650653834398269907682414770607740118550133705367687544086311363017206790222383783852580218140600394260650760982632001519380763303558666153915042560594069176863784581543418458525591507408131725031957270037057987797717764434520593350585037421277906483714624276503471456946430686578482993644575489382521399571013756775034255676232913797338791304730055484173750680015498419868692396528614707927320356100464736528604987679078828830113005043720748906779884207844336016777224583410362930104134525212274343750193525437075704987852683828381070534301015328398595855074166137400121232317256223003729059767502927886548957026880361800152028074858848185863233214542218152450097053373885865288162573815895584046933483010636624326221042921025817397818652220830681420703883159033262215546415921619300547880931377266140644932198952990899040759971726535488708102762241216576479310624630991098475786962798270088505525990097356712849843778267149261035108885827146338749583302181931854870555860639584607039050032320463633938365552812365743811522503543394754387680531778149269129577241040374645677417566688450317550441527082425875030565378847388267103834048127818864801364745019043146973727700800304120469385915354405805910838451654126152112708811640234967915131722739518362849092216133642975738669840192868232365705692475864879384879982290760667907128096439354132512923168245666912345014087912013793154865253760150865620918348692838451584297376016360175623069782677923727507847182425866438213375987615153753259842952199975843101808700181748530091947958317104996778132220293686464878074402536145294711777670112921004987255531646720466847098913020373339134950170871318124406892119958731482397456823417479242913979908858779466652876998660282037596804544520921987559667887791210333694989414237817364869213085417789802019462967031110199493815703876595701479205617373962361487155731771445359733620206877493508640938641422337514176560175826841876411465105308828100924824611019508436446892683757299287011041141487877061639781733452936740323806169963208929354311818529988128046348180069620196672351192255607848383932506741556263305744840874654180859034222847696441668105587556178181000593632819184481591565871968352284597990101833505000624639202765714958033231973966037670718042916628065825843477336276456327713422052577986989383282486642290992848493937496407138624808859240814272364653380188286173620599278196536009000080282140876378764102343765311926375728021277369465521350707571762252116022718715763163558368213008936468254300729204200997615013518941592341324410000642108281739498830026573442267754810074182968284266833447231492870296861620469171736679864291614647301836337052342720341657925081157790098598095740483001940360036186052098593797350695655773975474178335472858935087637937116314108653841811379188662272"));
        assert_eq!(once.len(), 4932);
        // Twice that overflows.
        assert!(Ld::parse(once.as_bytes()).is_some(), "what it printed parses back");
        let max = Ld::parse(b"1e4932").unwrap();
        assert!(!max.plus(max).unwrap().is_finite());
    }

    #[test]
    fn text_redis_refuses_is_refused() {
        for bad in [
            "", " 1", "1 ", "abc", "1e", "1e+", "nan", "-nan", "1e5000", "1e-5000", "--1", "0x", ".", "1.2.3",
        ] {
            assert_eq!(Ld::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(Ld::parse(b"inf"), Some(Ld::Inf { neg: false }));
        assert_eq!(Ld::parse(b"-Infinity"), Some(Ld::Inf { neg: true }));
        assert!(Ld::parse(b"0e99999").is_some(), "zero never overflows");
        // Subnormals parse (strtold's ERANGE with a non-zero value, which Redis accepts); below
        // the smallest one the value underflows to zero and is refused.
        assert!(Ld::parse(b"1e-4940").is_some());
        assert_eq!(Ld::parse(b"1e-4960"), None);
    }
}
