//! Pure: the line diff `cluster-agent --dry-run` prints between the hosts file
//! on disk and the one it would write — unified-style hunks (`@@ -a,b +c,d @@`,
//! then ` `, `-` and `+` lines) holding only the changed regions with
//! [`CONTEXT`] lines around them. Lines are compared with their line breaks;
//! they are shown without them, and a last line without one is followed by
//! `\ No newline at end of file`, as `diff -u` does.
//!
//! The common head and tail are skipped first, so a change to a 10,000-line
//! file costs what the changed region costs; the region is then diffed with
//! Myers' O((N+M)·D) algorithm. Beyond [`MAX_EDITS`] edits the region is shown
//! as removed and added whole, which keeps time and memory bounded.

/// Unchanged lines shown around each change.
pub const CONTEXT: usize = 3;
/// The most edits (removed + added lines) searched for a minimal diff.
pub const MAX_EDITS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    Delete,
    Insert,
}

/// Pure. A readable line diff between two versions of a file; empty when they
/// are equal.
pub fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops = vec![Op::Equal; head];
    match myers(ma, mb) {
        Some(middle) => ops.extend(middle),
        None => {
            ops.extend(std::iter::repeat_n(Op::Delete, ma.len()));
            ops.extend(std::iter::repeat_n(Op::Insert, mb.len()));
        }
    }
    ops.extend(std::iter::repeat_n(Op::Equal, tail));
    hunks(&a, &b, &ops)
}

/// The edit script turning `a` into `b`, or `None` past [`MAX_EDITS`].
fn myers(a: &[&str], b: &[&str]) -> Option<Vec<Op>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max = (a.len() + b.len()).min(MAX_EDITS) as isize;
    let offset = max + 1;
    let mut v = vec![0isize; 2 * max as usize + 3];
    // trace[d] holds v[-(d+1)..=d+1] as it was before step d.
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let mut done = None;
    'search: for d in 0..=max {
        trace.push(v[(offset - d - 1) as usize..=(offset + d + 1) as usize].to_vec());
        for k in (-d..=d).step_by(2) {
            let at = |k: isize| v[(offset + k) as usize];
            let mut x = if k == -d || (k != d && at(k - 1) < at(k + 1)) {
                at(k + 1)
            } else {
                at(k - 1) + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[(offset + k) as usize] = x;
            if x >= n && y >= m {
                done = Some(d);
                break 'search;
            }
        }
    }
    let done = done?;
    let mut ops = Vec::with_capacity((n + m) as usize);
    let (mut x, mut y) = (n, m);
    for d in (0..=done).rev() {
        let v = &trace[d as usize];
        let at = |k: isize| v[(k + d + 1) as usize];
        let k = x - y;
        let (px, py) = if d == 0 {
            (0, 0)
        } else {
            let pk = if k == -d || (k != d && at(k - 1) < at(k + 1)) {
                k + 1
            } else {
                k - 1
            };
            (at(pk), at(pk) - pk)
        };
        while x > px && y > py {
            ops.push(Op::Equal);
            x -= 1;
            y -= 1;
        }
        if d > 0 {
            ops.push(if x == px { Op::Insert } else { Op::Delete });
        }
        (x, y) = (px, py);
    }
    ops.reverse();
    Some(ops)
}

fn hunks(a: &[&str], b: &[&str], ops: &[Op]) -> String {
    let mut out = String::new();
    let changed: Vec<usize> = (0..ops.len()).filter(|&i| ops[i] != Op::Equal).collect();
    let mut i = 0;
    while i < changed.len() {
        // A hunk runs from CONTEXT before its first change to CONTEXT after its
        // last, merging changes whose contexts touch.
        let start = changed[i].saturating_sub(CONTEXT);
        let mut j = i;
        while j + 1 < changed.len() && changed[j + 1] - changed[j] <= 2 * CONTEXT + 1 {
            j += 1;
        }
        let end = (changed[j] + CONTEXT + 1).min(ops.len());
        let count =
            |ops: &[Op], side: Op| ops.iter().filter(|&&o| o == Op::Equal || o == side).count();
        let (old_before, new_before) = (
            count(&ops[..start], Op::Delete),
            count(&ops[..start], Op::Insert),
        );
        let (old_len, new_len) = (
            count(&ops[start..end], Op::Delete),
            count(&ops[start..end], Op::Insert),
        );
        let first = |before: usize, len: usize| if len == 0 { before } else { before + 1 };
        out.push_str(&format!(
            "@@ -{},{old_len} +{},{new_len} @@\n",
            first(old_before, old_len),
            first(new_before, new_len)
        ));
        let (mut x, mut y) = (old_before, new_before);
        for op in &ops[start..end] {
            let (sign, line) = match op {
                Op::Equal => {
                    x += 1;
                    y += 1;
                    (' ', a[x - 1])
                }
                Op::Delete => {
                    x += 1;
                    ('-', a[x - 1])
                }
                Op::Insert => {
                    y += 1;
                    ('+', b[y - 1])
                }
            };
            out.push(sign);
            match line.strip_suffix('\n') {
                Some(text) => out.push_str(text.strip_suffix('\r').unwrap_or(text)),
                None => {
                    out.push_str(line);
                    out.push_str("\n\\ No newline at end of file");
                }
            }
            out.push('\n');
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Diffs `old` and `new` (written with `|` for line breaks) and compares
    /// with the expected hunks.
    fn check(old: &str, new: &str, expected: &str) {
        let (old, new) = (old.replace('|', "\n"), new.replace('|', "\n"));
        assert_eq!(diff(&old, &new), expected, "old {old:?} new {new:?}");
    }

    #[test]
    fn diffs() {
        check("a|b|", "a|b|", "");
        check("", "", "");
        check("", "a|", "@@ -0,0 +1,1 @@\n+a\n");
        check("a|", "", "@@ -1,1 +0,0 @@\n-a\n");
        check("a|b|c|", "a|x|c|", "@@ -1,3 +1,3 @@\n a\n-b\n+x\n c\n");
        check(
            "1|2|3|4|5|6|7|8|9|",
            "1|2|3|4|X|6|7|8|9|",
            "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+X\n 6\n 7\n 8\n",
        );
        // Two changes far apart are two hunks; close ones are one.
        check(
            "1|2|3|4|5|6|7|8|9|10|11|12|",
            "X|2|3|4|5|6|7|8|9|10|11|Y|",
            "@@ -1,4 +1,4 @@\n-1\n+X\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+Y\n",
        );
        check(
            "1|2|3|4|5|",
            "X|2|3|4|Y|",
            "@@ -1,5 +1,5 @@\n-1\n+X\n 2\n 3\n 4\n-5\n+Y\n",
        );
        // An insertion between equal lines is found, not a rewrite.
        check("a|c|", "a|b|c|", "@@ -1,2 +1,3 @@\n a\n+b\n c\n");
        check(
            "a|b|c|d|",
            "b|d|e|",
            "@@ -1,4 +1,3 @@\n-a\n b\n-c\n d\n+e\n",
        );
        // A missing final newline is shown.
        check(
            "a",
            "a|B|",
            "@@ -1,1 +1,2 @@\n-a\n\\ No newline at end of file\n+a\n+B\n",
        );
        // CRLF lines are shown without their \r.
        check("a\r|b\r|", "a\r|c\r|", "@@ -1,2 +1,2 @@\n a\n-b\n+c\n");
    }

    #[test]
    fn a_huge_rewrite_stays_bounded_and_complete() {
        let old: String = (0..5000).map(|i| format!("o{i}\n")).collect();
        let new: String = (0..5000).map(|i| format!("n{i}\n")).collect();
        let started = std::time::Instant::now();
        let out = diff(&old, &new);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(out.lines().filter(|l| l.starts_with('-')).count(), 5000);
        assert_eq!(out.lines().filter(|l| l.starts_with('+')).count(), 5000);
    }
}
