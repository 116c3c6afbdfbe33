//! Tables for custom delimiters: `G%@…` in compound expressions,
//! [`Target::parse_with`] for the other kinds (`-G --delimiter %`), which
//! characters can be a delimiter, and how a spec with one is shown.

use super::{check, check_err, check_err_with, check_in, fixture};
use crate::targets::Kind::{self, *};
use crate::targets::{Delimiter, DelimiterError, Target, TargetSpec};

/// `expr`, parsed with `delimiter`, matches exactly `expected`.
#[track_caller]
fn check_with(kind: Kind, expr: &str, delimiter: char, expected: &[&str]) {
    check_in(
        &fixture::nodes(),
        &fixture::groups(),
        kind,
        expr,
        delimiter,
        expected,
    );
}

#[test]
fn a_compound_word_may_choose_its_delimiter() {
    check(Compound, "G%@ipv4%10.0.1.*", &["web-1", "web-2"]);
    check(Compound, "G%@datacenter%name%ams1", &["web-1", "web-2"]);
    check(Compound, "G|@url|http://web-1.ams1:8080/health", &["web-1"]);
    check(Compound, "G%@ip_interfaces%*%127.0.0.1", &["web-1"]);
    check(Compound, "G.@datacenter.rack.4", &["web-1"]);
    check(Compound, "G§@os§Debian", &["web-1", "lb-1"]);
    // `:` is then an ordinary character of keys and values.
    check(Compound, "I%@app:tier%front", &["web-1"]);
    check(Compound, "G%@url%*:9090/*", &["web-2"]);
    // Regex metacharacters may be delimiters (Salt's own example is
    // `J|@foo|bar|^foo:bar$`): the first reading keeps the whole regex.
    check(Compound, "P|@os|Debian|Ubuntu", &["web-1", "web-2", "lb-1"]);
    check(
        Compound,
        "P%@os%(debian|ubuntu)",
        &["web-1", "web-2", "lb-1"],
    );
    check(
        Compound,
        "F%@os.family%Debian and not G!@os!Ubuntu",
        &["web-1", "lb-1"],
    );
    check(Compound, "F|@networking.hostname|web-1", &["web-1"]);
    check(
        Compound,
        "(G%@os%Debian or I#@env#staging) and R@web",
        &["web-1", "web-2"],
    );
}

#[test]
fn the_other_kinds_take_the_delimiter_as_an_argument() {
    check_with(Grain, "ipv4%10.0.1.*", '%', &["web-1", "web-2"]);
    check_with(Grain, "motd%Hello: World", '%', &["mail-1"]);
    check_with(GrainRegex, "url|http://web-\\d", '|', &["web-1", "web-2"]);
    check_with(Label, "app:tier%front", '%', &["web-1"]);
    check_with(Label, "team*%[bB]lue", '%', &["web-1", "web-2"]);
    check_with(Fact, "os.family%RedHat", '%', &["db-1"]);
    check_with(Fact, "os.release.full/12.5", '/', &["web-1"]);
    // `:` is the default, and parse is parse_with it.
    check_with(Grain, "os:Debian", ':', &["web-1", "lb-1"]);
}

#[test]
fn delimiter_errors_in_compound_words() {
    let no_delimiter =
        |l: char| format!("`{l}@` takes no delimiter (`{l}%@`): only G@, P@, I@ and F@ do");
    for letter in ['E', 'L', 'S', 'R', 'N'] {
        check_err(
            Compound,
            &format!("web-1 or {letter}%@web"),
            10,
            &no_delimiter(letter),
        );
    }
    let glob = |c: char| {
        format!(
            "`{c}` cannot be a delimiter: it is a glob metacharacter, and a key may be a glob (`G@a:*:c:v`)"
        )
    };
    check_err(Compound, "G*@os*Debian", 1, &glob('*'));
    check_err(Compound, "P?@os?Deb", 1, &glob('?'));
    check_err(Compound, "I[@env[prod", 1, &glob('['));
    check_err(Compound, "G]@os]Debian", 1, &glob(']'));
    check_err(
        Compound,
        "G(@os(Debian",
        1,
        "`(` cannot be a delimiter: parentheses group compound expressions",
    );
    check_err(
        Compound,
        "web-1 or G)@os)Debian",
        10,
        "`)` cannot be a delimiter: parentheses group compound expressions",
    );
    check_err(
        Compound,
        r"G\@os\Debian",
        1,
        r"`\` cannot be a delimiter: it escapes the next character in a compound expression",
    );
    check_err(
        Compound,
        "F.@os.family.Debian",
        1,
        "`.` cannot be F@'s delimiter: it separates the keys of a fact's path (os.family)",
    );
    check_err(Compound, "G%@os", 3, "expected KEY%VALUE, found `os`");
    check_err(
        Compound,
        "G%@%Debian",
        3,
        "expected KEY%VALUE, the key is empty",
    );
    check_err(Compound, "G%@", 3, "expected a value after `G%@`");
    check_err(
        Compound,
        "F%@os.family",
        3,
        "expected PATH%VALUE with a dotted path (os.family%Debian), found `os.family`",
    );
    // `@` cannot be one: `G@@…` is `G@` and a value starting with `@`.
    check_err(
        Compound,
        "G@@os@Debian",
        2,
        "expected KEY:VALUE, found `@os@Debian`",
    );
    let known = "(expected one of G@, P@, E@, L@, I@, F@, S@, R@, N@)";
    check_err(
        Compound,
        "G%%@os%%Debian",
        0,
        &format!("unknown prefix `G%%@` {known}"),
    );
    check_err(
        Compound,
        "X%@foo",
        0,
        &format!("unknown prefix `X%@` {known}"),
    );
    check_err(
        Compound,
        "g%@os%Debian",
        0,
        "unknown prefix `g%@`: prefixes are case-sensitive, did you mean `G%@`?",
    );
}

#[test]
fn a_delimiter_for_a_kind_that_takes_none_is_refused() {
    let applies = "the delimiter `%` applies to -G, -P, -I and -F expressions, not to";
    check_err_with(
        Compound,
        "G@os:Debian",
        '%',
        0,
        &format!(
            "{applies} -C expressions (in a compound expression it follows the prefix: `G%@key%value`)"
        ),
    );
    check_err_with(Glob, "web-*", '%', 0, &format!("{applies} a glob on names"));
    for (kind, flag) in [
        (Regex, "-E"),
        (List, "-L"),
        (Subnet, "-S"),
        (Role, "-R"),
        (NodeGroup, "-N"),
    ] {
        check_err_with(
            kind,
            "web",
            '%',
            0,
            &format!("{applies} {flag} expressions"),
        );
    }
    check_err_with(
        Fact,
        "os.family.Debian",
        '.',
        0,
        "`.` cannot be F@'s delimiter: it separates the keys of a fact's path (os.family)",
    );
    check_err_with(Grain, "os", '%', 0, "expected KEY%VALUE, found `os`");
    check_err_with(
        Label,
        "%prod",
        '%',
        0,
        "expected KEY%VALUE, the key is empty",
    );
}

#[test]
fn which_characters_can_be_a_delimiter() {
    for ok in [
        ":", "%", "|", "!", "#", ";", ",", ".", "/", "=", "~", "^", "$", "+", "§",
    ] {
        let d: Delimiter = ok.parse().unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        assert_eq!(d.to_string(), ok);
    }
    let refused = |text: &str| text.parse::<Delimiter>().unwrap_err();
    assert_eq!(refused(""), DelimiterError::Empty);
    assert_eq!(
        refused("::").to_string(),
        "a delimiter is one character, not 2 (`::`)"
    );
    assert_eq!(
        refused("\t").to_string(),
        "a delimiter cannot be whitespace or a control character (found '\\t')"
    );
    assert_eq!(refused(" "), DelimiterError::Blank { found: ' ' });
    assert_eq!(refused("\u{0}"), DelimiterError::Blank { found: '\u{0}' });
    for glob in ["*", "?", "[", "]"] {
        assert!(
            matches!(refused(glob), DelimiterError::Glob { .. }),
            "{glob}"
        );
    }
    for reserved in ["@", "(", ")", "\\"] {
        assert!(
            matches!(refused(reserved), DelimiterError::Reserved { .. }),
            "{reserved}"
        );
    }
    assert_eq!(Delimiter::default(), Delimiter::DEFAULT);
    assert_eq!(Delimiter::DEFAULT.as_char(), ':');
}

#[test]
fn a_target_remembers_its_delimiter_and_shows_it() {
    let groups = fixture::groups();
    let percent = Delimiter::new('%').unwrap();
    let with = Target::parse_with(Grain, "a:b%c", &groups, percent).unwrap();
    let without = Target::parse(Grain, "a:b%c", &groups).unwrap();
    assert_eq!(with.delimiter(), percent);
    assert_eq!(without.delimiter(), Delimiter::DEFAULT);
    assert_ne!(with, without);
    let spec = TargetSpec::Expr(Grain, "ipv6%fe80::*".into(), percent);
    assert_eq!(spec.to_string(), "-G --delimiter % ipv6%fe80::*");
    assert_eq!(
        TargetSpec::Parsed(with.into()).to_string(),
        "-G --delimiter % a:b%c"
    );
    assert_eq!(
        TargetSpec::expr(Fact, "os.family:Debian").to_string(),
        "-F os.family:Debian"
    );
}
