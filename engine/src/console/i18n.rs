//! The console's words in Japanese (first) and English: one table, so a
//! missing translation is a test failure, not a blank on a page. Pages
//! get the whole table for their locale as `tr`; stored vocabulary
//! (outcomes, causes, states, timeline steps) is shown through
//! [`word`], which falls back to the stored word itself for a word a
//! later release adds.
//!
//! Depends on: nothing.

use std::collections::BTreeMap;

/// A locale the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    Ja,
    En,
}

impl Locale {
    pub fn parse(s: &str) -> Locale {
        if s == "en" {
            Locale::En
        } else {
            Locale::Ja
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Ja => "ja",
            Locale::En => "en",
        }
    }
    pub fn other(self) -> Locale {
        match self {
            Locale::Ja => Locale::En,
            Locale::En => Locale::Ja,
        }
    }
}

/// (key, Japanese, English).
const WORDS: &[(&str, &str, &str)] = &[
    ("skip", "本文へ移動", "Skip to content"),
    ("brand", "見守り電話", "welfare calls"),
    ("nav", "メニュー", "Menu"),
    ("nav_today", "今日", "Today"),
    ("nav_cases", "対応ケース", "Cases"),
    ("nav_people", "利用者", "People"),
    ("nav_import", "取り込み", "Import"),
    ("nav_report", "月次報告", "Monthly report"),
    ("nav_settings", "設定", "Settings"),
    ("tenant", "事業所", "Organisation"),
    ("switch", "切り替え", "Switch"),
    ("other_lang", "English", "日本語"),
    ("sign_out", "ログアウト", "Sign out"),
    ("footer", "見守り電話の結果は、見守る人が確かめるためのものです。", "Every outcome is for a person to act on."),
    ("signin_title", "ログイン", "Sign in"),
    ("login", "ログインID", "Login"),
    ("password", "パスワード", "Password"),
    ("language", "表示言語", "Language"),
    ("sign_in", "ログイン", "Sign in"),
    ("back_today", "今日の画面へ戻る", "Back to Today"),
    ("today_title", "今日の見守り", "Today's round"),
    ("today_hint", "この画面は5秒ごとに自動で更新されます。", "This page updates itself every 5 seconds."),
    ("refresh", "今すぐ更新", "Refresh now"),
    ("progress", "進み具合", "Progress"),
    ("updated", "更新", "Updated"),
    ("total", "予定の件数", "Checks today"),
    ("not_yet_fine", "まだ「元気」の確認がとれていない方", "Not yet fine"),
    ("person", "お名前", "Person"),
    ("state", "状態", "State"),
    ("reason", "理由", "Reason"),
    ("next_attempt", "次の発信", "Next attempt"),
    ("case", "ケース", "Case"),
    ("more_rows", "ほかにもいます。利用者の画面で確かめてください。", "There are more; see each person's page."),
    ("rows_hint", "対応が必要な方から順に並べています（まだ電話していない方は件数のみ）。", "Those to act on come first (people not yet called are only counted)."),
    ("everyone_fine", "全員の「元気」が確認できました。", "Everyone is fine."),
    ("cases_title", "対応ケース", "Alert cases"),
    ("filter", "絞り込み", "Filter"),
    ("severity", "緊急度", "Severity"),
    ("opened", "開始", "Opened"),
    ("taken_by", "担当", "Taken by"),
    ("next_page", "次のページ", "Next page"),
    ("first_page", "最初のページ", "First page"),
    ("no_cases", "該当するケースはありません。", "No cases."),
    ("why", "理由", "Why"),
    ("resolved_by", "完了した人", "Resolved by"),
    ("note", "メモ", "Note"),
    ("act", "対応", "Act"),
    ("take", "担当する", "Take it"),
    ("pass", "次の見守り手へ回す", "Pass it on"),
    ("pass_hint", "「回す」と、連絡網の次の段の方へすぐに知らせます。", "Passing tells the next tier of watchers now."),
    ("resolve_note", "対応の内容（必須）", "What was done (required)"),
    ("resolve", "対応完了にする", "Resolve"),
    ("case_closed", "このケースは完了しています。", "This case is resolved."),
    ("who_was_told", "知らせた相手", "Who was told"),
    ("watcher", "見守り手", "Watcher"),
    ("channel", "方法", "Channel"),
    ("tries", "試行", "Tries"),
    ("last_error", "直近のエラー", "Last error"),
    ("nobody_told", "まだ誰にも知らせていません。", "Nobody has been told yet."),
    ("timeline", "経過", "Timeline"),
    ("people_title", "利用者", "People"),
    ("search_label", "名前・電話番号で検索", "Search by name or phone"),
    ("search", "検索", "Search"),
    ("name", "名前", "Name"),
    ("phone", "電話番号", "Phone"),
    ("schedule", "発信の予定", "Schedule"),
    ("paused_until", "一時停止", "Paused until"),
    ("nobody_found", "該当する方はいません。", "Nobody found."),
    ("notes", "備考", "Notes"),
    ("open_case", "対応中のケース", "Open case"),
    ("pause_title", "一時停止・発信", "Pause and call"),
    ("pause_until", "この日まで止める", "Pause until"),
    ("save", "保存", "Save"),
    ("resume", "再開する", "Resume now"),
    ("call_now", "今すぐ電話する", "Call now"),
    ("watchers", "見守り手と連絡網", "Watchers and ladder"),
    ("tier", "段", "Tier"),
    ("no_ladder", "連絡網が設定されていません。", "No ladder is set."),
    ("chart_title", "この90日", "The last 90 days"),
    ("legend_fine", "元気", "fine"),
    ("legend_answered", "出たが「元気」ではない", "answered, not fine"),
    ("legend_missed", "つながらない", "not reached"),
    ("legend_none", "予定なし", "no call"),
    ("history", "記録", "History"),
    ("recording", "録音", "Recording"),
    ("no_history", "記録はまだありません。", "No history yet."),
    ("import_title", "利用者の取り込み（CSV）", "Import people (CSV)"),
    ("import_hint", "1行目は見出し: name, phone, days, times, paused_until, notes。UTF-8（Excelの「CSV UTF-8」）で保存してください。", "The first row names the columns: name, phone, days, times, paused_until, notes. UTF-8 (Excel's \"CSV UTF-8\")."),
    ("csv_file", "CSVファイル", "CSV file"),
    ("import_go", "取り込む", "Import"),
    ("viewer_cannot", "閲覧のみの権限では変更できません。", "Viewers cannot change anything."),
    ("import_result", "取り込みの結果", "Result"),
    ("row_errors", "取り込めなかった行", "Rows not imported"),
    ("line", "行", "Line"),
    ("field", "項目", "Field"),
    ("message", "内容", "Message"),
    ("report_title", "月次報告", "Monthly report"),
    ("month", "月", "Month"),
    ("show", "表示", "Show"),
    ("export_csv", "結果をCSVで保存（Excel用）", "Outcomes as CSV (for Excel)"),
    ("print", "印刷", "Print"),
    ("totals", "月の合計", "Totals"),
    ("outcome", "結果", "Outcome"),
    ("count", "件数", "Count"),
    ("people_enrolled", "登録者数", "People enrolled"),
    ("cases_opened", "開いたケース", "Cases opened"),
    ("by_day", "日ごと", "By day"),
    ("date", "日付", "Date"),
    ("settings_title", "設定", "Settings"),
    ("calling", "発信の時間と再発信", "Calling window and retries"),
    ("window_start", "発信してよい時刻（から）", "Calls from"),
    ("window_end", "発信してよい時刻（まで）", "Calls until"),
    ("skip_holidays", "祝日は発信しない", "No calls on public holidays"),
    ("max_attempts", "発信の回数（初回を含む）", "Attempts (the first included)"),
    ("spacing_minutes", "再発信までの分", "Minutes between attempts"),
    ("retry_no_input", "出たがボタンが押されないときも再発信する", "Call again when answered without a key"),
    ("script", "案内の流れ（JSON、空欄は標準）", "Script (JSON; empty: the default)"),
    ("script_hint", "ボタンの意味と案内の順番です。詳しくはREADMEの「Watch script」を見てください。", "What each key means and the order of prompts (README, \"Watch script\")."),
    ("prompts", "案内の音声", "Prompts"),
    ("listen", "再生", "Play"),
    ("no_prompts", "独自の音声はありません（標準の音声を使います）。", "No prompts of your own (the defaults play)."),
    ("prompt_name", "名前（例: greeting）", "Name (e.g. greeting)"),
    ("wav_file", "WAVファイル（8kHz・モノラル）", "WAV file (8 kHz mono)"),
    ("upload", "登録", "Upload"),
    ("email", "メール", "Email"),
    ("no_watchers", "見守り手はまだいません。", "No watchers yet."),
    ("add_watcher", "見守り手を追加", "Add a watcher"),
    ("ladder", "標準の連絡網", "Default ladder"),
    ("ladder_hint", "要連絡のとき、段の順に知らせます。期限までに誰も担当しなければ次の段へ。", "When someone needs contact, tiers are told in order; nobody takes it by the deadline, the next tier is told."),
    ("ladder_tiers", "段（見守り手ID）", "Tiers (watcher ids)"),
    ("ladder_deadline", "各段の期限（分）", "Minutes per tier"),
    ("ladder_tiers_hint", "例: 「1,2; 3」は1段目がID 1と2、2段目がID 3。", "e.g. \"1,2; 3\": ids 1 and 2 first, then 3."),
    ("staff", "スタッフ", "Staff"),
    ("role", "権限", "Role"),
    ("add_staff", "スタッフを追加", "Add staff"),
    ("done", "完了:", "Done:"),
    ("error", "エラー:", "Error:"),
    ("wrong_login", "ログインIDまたはパスワードが違います。", "Wrong login or password."),
    ("locked", "パスワードの誤りが続いたため、ロックしています。この時刻以降にもう一度お試しください:", "Locked after too many wrong passwords. Try again after"),
    ("csrf", "フォームの有効期限が切れました。画面を開き直してもう一度お試しください。", "The form expired. Open the page again and retry."),
    ("forbidden", "この操作をする権限がありません。", "You may not do this."),
    ("not_found", "見つかりません", "Not found"),
    ("not_found_text", "このページはないか、見る権限がありません。", "This page does not exist, or is not yours to see."),
    ("refused", "できませんでした", "Refused"),
    ("storage", "記録が保存できません。しばらくしてから、もう一度お試しください。何も変更していません。", "Storage is unavailable; nothing was changed. Try again shortly."),
    ("taken", "ケースを担当しました。", "You took the case."),
    ("passed", "次の段へ知らせました。", "The next tier has been told."),
    ("resolved", "対応完了にしました。知らせた方へ無事の連絡を送ります。", "Resolved. Everyone told gets the all-clear."),
    ("paused_saved", "一時停止を保存しました。", "Pause saved."),
    ("call_queued", "まもなく電話をかけます。", "A call will be placed shortly."),
    ("settings_saved", "設定を保存しました。", "Settings saved."),
    ("prompt_saved", "音声を登録しました。", "Prompt uploaded."),
    ("watcher_added", "見守り手を追加しました。", "Watcher added."),
    ("ladder_saved", "連絡網を保存しました。", "Ladder saved."),
    ("staff_added", "スタッフを追加しました。", "Staff member added."),
    ("imported_n", "件を取り込みました。取り込めなかった行:", "imported. Rows not imported:"),
    ("active", "有効", "active"),
    ("locked_state", "ロック中", "locked"),
    ("disabled", "無効", "disabled"),
    ("minutes", "分", "min"),
    ("tenant_default", "（事業所の標準の連絡網）", "(the organisation's default ladder)"),
    ("own_ladder", "（この方の連絡網）", "(this person's own ladder)"),
    ("every_day", "毎日", "every day"),
    ("not_scheduled", "定期の発信なし", "no scheduled calls"),
    ("not_paused", "—", "—"),
    ("attempt", "発信", "Call"),
    ("key", "ボタン", "key"),
    ("answered_by", "応答", "answered by"),
    ("inbound", "本人からの電話", "called in"),
    ("check_result", "確認の結果", "Check result"),
    ("chart_totals", "元気 {fine} 日 · 出たが元気ではない {answered} 日 · つながらない {missed} 日", "fine {fine} days · answered, not fine {answered} · not reached {missed}"),
    // Outcomes and check states.
    ("o_fine", "元気", "fine"),
    ("o_needs_contact", "要連絡", "needs contact"),
    ("o_no_response", "応答なし", "no response"),
    ("o_missed", "不在", "missed"),
    ("o_spoke", "声のみ（ボタンなし）", "spoke (no key)"),
    ("o_not_attempted", "発信せず", "not attempted"),
    ("s_pending", "発信前", "not yet called"),
    ("s_dialing", "通話中", "in call"),
    ("s_retrying", "再発信待ち", "retry due"),
    // Causes.
    ("c_no_answer", "呼び出したが出ない", "rang, no answer"),
    ("c_busy", "話し中", "busy"),
    ("c_failed", "つながらない", "failed"),
    ("c_rejected", "拒否された", "rejected"),
    ("c_no_input", "出たがボタンなし", "answered, no key"),
    ("c_interrupted", "途中で切れた", "cut off"),
    ("c_carrier", "通信事業者の障害", "carrier fault"),
    ("c_invalid_number", "番号が使われていない", "number not in service"),
    ("c_not_allowed", "発信できない番号", "number not allowed"),
    ("c_outside_window", "発信時間外", "outside the window"),
    ("c_paused", "一時停止中", "paused"),
    ("c_rescheduled", "予定変更", "rescheduled"),
    ("c_subscriber_deleted", "登録削除", "person removed"),
    ("c_machine", "留守番電話", "answering machine"),
    ("c_announcement", "案内放送", "network announcement"),
    ("c_fax", "FAX", "fax"),
    ("c_spoke", "声のみ", "spoke"),
    // How a call ended (an attempt that did not end the check).
    ("er_no_answer", "呼び出したが出ない", "rang, no answer"),
    ("er_hangup", "切られた", "hung up"),
    ("er_remote_bye", "相手が切った", "the far end hung up"),
    ("er_script_done", "案内を終えた", "script finished"),
    ("er_timeout", "ボタンを待ったが押されない", "no key in time"),
    ("er_machine", "留守番電話", "answering machine"),
    ("er_not_lifted", "受話器が上がらない", "handset not lifted"),
    ("er_unreachable", "つながらない", "unreachable"),
    ("er_interrupted", "途中で切れた", "cut off"),
    // Who answered.
    ("a_human", "本人", "a person"),
    ("a_recorder", "通話録音機→本人", "call recorder, then a person"),
    ("a_machine", "留守番電話", "machine"),
    ("a_announcement", "案内放送", "announcement"),
    ("a_fax", "FAX", "fax"),
    ("a_silence", "無音", "silence"),
    ("a_unknown", "不明", "unknown"),
    // Cases.
    ("cs_open", "未対応", "open"),
    ("cs_acknowledged", "対応中", "taken"),
    ("cs_resolved", "完了", "resolved"),
    ("cs_all", "すべて", "all"),
    ("cs_unacknowledged", "未対応", "not taken"),
    ("sev_normal", "通常", "normal"),
    ("sev_high", "高", "high"),
    ("sev_urgent", "至急", "urgent"),
    ("e_opened", "ケース開始", "case opened"),
    ("e_outcome", "結果を追加", "outcome added"),
    ("e_severity", "緊急度の変更", "severity changed"),
    ("e_tier", "連絡網の段", "ladder tier"),
    ("e_notification_queued", "連絡を予定", "notification queued"),
    ("e_delivered", "連絡が届いた", "delivered"),
    ("e_failed", "連絡に失敗", "delivery failed"),
    ("e_given_up", "連絡をあきらめた", "given up"),
    ("e_cancelled", "連絡を取り消し", "cancelled"),
    ("e_acknowledged", "担当", "taken"),
    ("e_passed", "次へ回した", "passed on"),
    ("e_resolved", "対応完了", "resolved"),
    ("e_ladder_exhausted", "連絡網の全員に知らせた", "every tier told"),
    ("e_no_ladder", "連絡網がない", "no ladder"),
    ("e_watcher_missing", "見守り手が見つからない", "watcher missing"),
    ("e_all_clear_queued", "無事の連絡を予定", "all-clear queued"),
    ("n_pending", "送信待ち", "pending"),
    ("n_delivered", "届いた", "delivered"),
    ("n_given_up", "あきらめた", "given up"),
    ("n_cancelled", "取り消し", "cancelled"),
    ("ch_phone", "電話", "phone"),
    ("ch_email", "メール", "email"),
    ("ch_webhook", "Webhook", "webhook"),
    ("r_viewer", "閲覧", "viewer"),
    ("r_coordinator", "コーディネーター", "coordinator"),
    ("r_admin", "事業所管理者", "organisation admin"),
    ("r_operator", "運用者", "operator"),
];

/// Every word of a locale, for a page's `tr`.
pub fn table(l: Locale) -> BTreeMap<&'static str, &'static str> {
    WORDS
        .iter()
        .map(|(k, ja, en)| (*k, if l == Locale::Ja { *ja } else { *en }))
        .collect()
}

/// One word: `prefix_word` from the table, or the stored word itself.
pub fn word(l: Locale, prefix: &str, stored: &str) -> String {
    let key = format!("{prefix}_{stored}");
    WORDS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, ja, en)| if l == Locale::Ja { *ja } else { *en })
        .unwrap_or(stored)
        .to_string()
}

/// A word of the table by its key (the key itself if it is missing: the
/// test below keeps that from shipping).
pub fn t(l: Locale, key: &str) -> &'static str {
    WORDS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, ja, en)| if l == Locale::Ja { *ja } else { *en })
        .unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `tr.key` a template uses is in the table, in both languages,
    /// and no key is there twice.
    #[test]
    fn every_word_a_page_uses_is_translated() {
        let mut seen = std::collections::BTreeSet::new();
        for (k, ja, en) in WORDS {
            assert!(seen.insert(*k), "{k} twice");
            assert!(!ja.is_empty() && !en.is_empty(), "{k} empty");
        }
        for (name, text) in super::super::TEMPLATES {
            for part in text.split("tr.").skip(1) {
                let key: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                assert!(
                    seen.contains(key.as_str()),
                    "{name}: tr.{key} is not translated"
                );
            }
        }
        assert_eq!(word(Locale::Ja, "o", "fine"), "元気");
        assert_eq!(
            word(Locale::En, "c", "a_word_from_later"),
            "a_word_from_later"
        );
    }
}
