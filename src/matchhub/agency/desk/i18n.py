"""Arabic first, English second: the desk's words, numbers and dates.

Every string a page shows is a key of `MESSAGES`, with its Arabic and its English (a test
checks that each has both). Flag and purpose labels are not here: they come from the broker's
catalogue (``GET /v1/flags``), so the desk says exactly what the catalogue says.

Numbers and dates follow CLDR for Arabic as written in Iraq (``ar_IQ``), through Babel:
Arabic-Indic digits (٠١٢٣٤٥٦٧٨٩) with the Arabic thousands separator, which is what CLDR gives
as Iraq's default numbering system and what Iraqi ministries print; and the month names used in
Iraq (كانون الثاني، شباط، آذار...), not the Egyptian transliterations (يناير، فبراير...). Babel
supplies the grouping and the month names; its output keeps ASCII digits, which `digits` maps.
Identifiers (a beneficiary ID, a national ID as typed) are codes, not quantities: they are shown
as the registry writes them. Times are shown in the desk's time zone (Asia/Baghdad).
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent

LANGUAGES = ("ar", "en")
LOCALES = {"ar": "ar_IQ", "en": "en_GB"}
TIME_ZONE = ZoneInfo("Asia/Baghdad")
_ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def digits(text: str, language: str) -> str:
    return text.translate(_ARABIC_DIGITS) if language == "ar" else text


def _system(language: str) -> str:
    # "default": the locale's own numbering system, so Arabic gets its own separators (٬ ٫ ٪).
    return "default" if language == "ar" else "latn"


def number(value: int | float, language: str) -> str:
    text = format_decimal(value, locale=LOCALES[language], numbering_system=_system(language))
    return digits(text, language)


def percent(value: float, language: str) -> str:
    text = format_percent(
        value, "#,##0.#%", locale=LOCALES[language], numbering_system=_system(language)
    )
    return digits(text, language)


def day(value: date | str | None, language: str) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return digits(format_date(value, format="long", locale=LOCALES[language]), language)


def moment(value: datetime | None, language: str) -> str:
    if value is None:
        return "—"
    local = value.astimezone(TIME_ZONE)
    pattern = "d MMMM y، HH:mm" if language == "ar" else "d MMMM y, HH:mm"
    return digits(format_datetime(local, pattern, locale=LOCALES[language]), language)


def t(key: str, language: str) -> str:
    """The message `key` in `language` (a missing key shows as itself, never a crash)."""
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    return entry[0] if language == "ar" else entry[1]


# key: (Arabic, English)
MESSAGES: dict[str, tuple[str, str]] = {
    # the layout
    "app.name": ("مكتب الوزارة", "Ministry desk"),
    "app.ministry": ("وزارة العمل والشؤون الاجتماعية", "Ministry of Labour and Social Affairs"),
    "app.footer": (
        "كل مؤشر هنا دلالة تحتاج إلى تحقق، وليس قراراً. لا تظهر هنا بيانات الجهات الشريكة.",
        "Every flag here is an indication to verify, never a decision. No partner's records "
        "are shown here.",
    ),
    "nav.dashboard": ("الرئيسية", "Home"),
    "nav.lookup": ("الاستعلام عن حالة", "Case lookup"),
    "nav.matches": ("المطابقة الجماعية", "Collective match"),
    "nav.roster": ("سجل المستفيدين", "Roster"),
    "nav.staff": ("الموظفون", "Staff"),
    "nav.log": ("سجل المكتب", "Desk log"),
    "nav.audit": ("التدقيق", "Audit"),
    "nav.language": ("English", "العربية"),
    "nav.signout": ("تسجيل الخروج", "Sign out"),
    "nav.signed_in_as": ("المستخدم", "Signed in as"),
    "role.caseworker": ("باحث حالة", "Caseworker"),
    "role.analyst": ("محلل", "Analyst"),
    "role.supervisor": ("مشرف", "Supervisor"),
    "role.auditor": ("مدقق", "Auditor"),
    "source.bank": ("المصارف", "Banks"),
    "source.pension": ("هيئة التقاعد الوطنية", "Pension authority"),
    "source.traffic": ("مديرية المرور العامة", "Traffic directorate"),
    "source.trade": ("وزارة التجارة", "Ministry of Trade"),
    "source.education": ("وزارة التربية", "Ministry of Education"),
    "source.higher_education": ("وزارة التعليم العالي", "Ministry of Higher Education"),
    # sign-in
    "login.title": ("تسجيل الدخول", "Sign in"),
    "login.name": ("اسم المستخدم", "User name"),
    "login.password": ("كلمة المرور", "Password"),
    "login.submit": ("دخول", "Sign in"),
    "login.refused": (
        "لم يتم الدخول: تحقق من الاسم وكلمة المرور. بعد عدة محاولات خاطئة يُقفل الحساب مؤقتاً؛ "
        "اطلب المساعدة من المشرف.",
        "Sign-in refused: check your name and password. After several failed attempts an "
        "account is locked for a while; ask your supervisor for help.",
    ),
    "login.expired": (
        "انتهت الجلسة لعدم الاستخدام. سجّل الدخول من جديد.",
        "Your session ended after a period without use. Please sign in again.",
    ),
    "login.signed_out": ("تم تسجيل الخروج.", "You have signed out."),
    "login.form_expired": (
        "انتهت صلاحية النموذج. أعد المحاولة.",
        "The form had expired. Please try again.",
    ),
    # errors
    "error.403.title": ("غير مسموح", "Not allowed"),
    "error.403.text": (
        "دورك في المكتب لا يسمح بهذه الصفحة أو بهذا الإجراء.",
        "Your role at the desk does not allow this page or this action.",
    ),
    "error.404.title": ("غير موجود", "Not found"),
    "error.404.text": ("لا توجد صفحة بهذا العنوان.", "There is no page at this address."),
    "error.csrf.title": ("طلب مرفوض", "Request refused"),
    "error.csrf.text": (
        "لم يأت هذا النموذج من صفحة المكتب المفتوحة. افتح الصفحة من جديد وأعد المحاولة.",
        "This form did not come from the desk's open page. Open the page again and retry.",
    ),
    "error.broker": (
        "تعذر الحصول على رد من الوسيط",
        "The broker could not answer",
    ),
    "error.back": ("العودة إلى الرئيسية", "Back to home"),
    "error.413.title": ("الملف كبير جداً", "Too large"),
    "error.413.text": (
        "ما أُرسل أكبر من الحد المسموح للمكتب، ولم يُقرأ منه شيء.",
        "What was sent is larger than the desk allows; none of it was read.",
    ),
    # dashboard
    "dashboard.title": ("أهلاً", "Welcome"),
    "dashboard.roster": ("سجل المستفيدين المسجَّل", "Registered roster"),
    "dashboard.no_roster": (
        "لم يُسجَّل سجل المستفيدين لدى الوسيط بعد.",
        "The roster has not been registered with the broker yet.",
    ),
    "dashboard.people": ("المستفيدون", "Beneficiaries"),
    "dashboard.households": ("الأسر", "Households"),
    "dashboard.registered": ("تاريخ التسجيل", "Registered"),
    "dashboard.version": ("الإصدار", "Version"),
    "dashboard.recent": ("آخر المطابقات", "Recent matches"),
    "dashboard.lookup_hint": (
        "للاستعلام عن مستفيد أو أكثر برقم البطاقة الوطنية.",
        "Look up one or a few beneficiaries by national card number.",
    ),
    "dashboard.match_hint": (
        "لمطابقة السجل كله مع جميع الجهات الشريكة دفعة واحدة.",
        "Match the whole roster against every partner at once.",
    ),
    "dashboard.audit_hint": (
        "وحدة التدقيق قيد الإعداد.",
        "The auditor's console is being prepared.",
    ),
    # lookup
    "lookup.title": ("الاستعلام عن حالة", "Case lookup"),
    "lookup.ids": ("أرقام البطاقة الوطنية (رقم في كل سطر)", "National card numbers (one a line)"),
    "lookup.ids_help": (
        "تُقبل الأرقام العربية والهندية والمسافات والشرطات. يبقى الرقم في المكتب، ولا يُرسل "
        "إلى الوسيط إلا رمزه المشفّر.",
        "Arabic-Indic digits, spaces and dashes are accepted. The number stays at the desk; "
        "only its keyed token goes to the broker.",
    ),
    "lookup.purpose": ("الغرض", "Purpose"),
    "lookup.submit": ("استعلام", "Look up"),
    "lookup.too_many": ("عدد الأرقام أكبر من المسموح", "More numbers than allowed at once"),
    "lookup.none": ("أدخل رقماً واحداً على الأقل.", "Enter at least one number."),
    "lookup.invalid": (
        "لم يُرسل شيء إلى الوسيط: صحّح الأسطر الآتية.",
        "Nothing was sent to the broker: correct these lines.",
    ),
    "lookup.line": ("السطر", "Line"),
    "reason.empty": ("فارغ", "empty"),
    "reason.bad_character": ("يحتوي على حرف غير رقمي", "holds a character that is not a digit"),
    "reason.wrong_length": ("عدد الأرقام غير صحيح (١٢ رقماً)", "wrong number of digits (12)"),
    "reason.placeholder": ("رقم وهمي متكرر", "a placeholder, one digit repeated"),
    "lookup.number": ("الرقم المُدخل", "Number entered"),
    "lookup.person": ("المستفيد", "Beneficiary"),
    "lookup.beneficiary_id": ("رقم المستفيد", "Beneficiary ID"),
    "lookup.household_id": ("رقم الأسرة", "Household ID"),
    "lookup.not_on_roster": (
        "ليس في سجل المستفيدين: لا يعطي الوسيط مؤشرات لمن هم خارج السجل.",
        "Not on the roster: the broker gives no flags for people off the ministry's roster.",
    ),
    "lookup.no_flags": (
        "لا توجد مؤشرات لدى الجهات الشريكة.",
        "No partner holds an indication about this beneficiary.",
    ),
    "lookup.indication": (
        "مؤشر يحتاج إلى تحقق",
        "Indication to verify",
    ),
    "lookup.indication_help": (
        "تشير سجلات جهة شريكة إلى ما يلي. تحقّق منه ميدانياً قبل أي قرار.",
        "A partner's records suggest the following. Verify it before any decision.",
    ),
    "lookup.source": ("الجهة", "Source"),
    "lookup.as_of": ("بتاريخ", "As of"),
    "lookup.results": ("النتائج", "Results"),
    # matches
    "matches.title": ("المطابقة الجماعية", "Collective match"),
    "matches.start": ("بدء مطابقة", "Start a match"),
    "matches.flags": ("المؤشرات (اتركها كلها لاختيار الكل)", "Flags (leave all for every flag)"),
    "matches.submit": ("بدء المطابقة", "Start the match"),
    "matches.history": ("المطابقات", "Matches"),
    "matches.number": ("رقم", "No."),
    "matches.by": ("بواسطة", "By"),
    "matches.started": ("البدء", "Started"),
    "matches.state": ("الحالة", "State"),
    "matches.flagged": ("مستفيدون لديهم مؤشرات", "Flagged beneficiaries"),
    "matches.none": ("لا توجد مطابقات بعد.", "No matches yet."),
    "matches.need_roster": (
        "سجّل سجل المستفيدين أولاً.",
        "Register the roster first.",
    ),
    "state.running": ("قيد التنفيذ", "Running"),
    "state.ready": ("جاهزة", "Ready"),
    "state.current": ("الحالي", "Current"),
    "state.replaced": ("مستبدل", "Replaced"),
    "state.failed": ("فشلت", "Failed"),
    "stage.submitted": ("أُرسلت إلى الوسيط", "Sent to the broker"),
    "stage.queued": ("في الانتظار لدى الوسيط", "Waiting at the broker"),
    "stage.matching": ("الوسيط يطابق", "The broker is matching"),
    "stage.resolving": ("إعداد القوائم محلياً", "Making the lists here"),
    "stage.done": ("انتهت", "Done"),
    "stage.reading": ("قراءة الملف وحساب الرموز", "Reading the file and computing tokens"),
    "stage.sending": ("الإرسال إلى الوسيط", "Sending to the broker"),
    # one match
    "match.title": ("المطابقة رقم", "Match no."),
    "match.purpose": ("الغرض", "Purpose"),
    "match.progress": ("التقدم", "Progress"),
    "match.summary": ("الخلاصة", "Summary"),
    "match.flagged_beneficiaries": ("مستفيدون لديهم مؤشرات", "Flagged beneficiaries"),
    "match.flagged_households": ("أسر لديها مؤشرات", "Flagged households"),
    "match.of_roster": ("من أصل", "of"),
    "match.per_flag": ("حسب المؤشر", "By flag"),
    "match.per_source": ("حسب الجهة", "By source"),
    "match.per_governorate": ("حسب المحافظة", "By governorate"),
    "match.flag": ("المؤشر", "Flag"),
    "match.source": ("الجهة", "Source"),
    "match.governorate": ("المحافظة", "Governorate"),
    "match.beneficiaries": ("مستفيدون", "Beneficiaries"),
    "match.households": ("أسر", "Households"),
    "match.on_roster": ("في السجل", "On the roster"),
    "match.why_more": (
        "مجموع الأعداد حسب الجهة أو حسب المؤشر أكبر من العدد الكلي، لأن المستفيد الذي تذكره "
        "جهتان، أو الذي لديه مؤشران، يُحسب مرة تحت كل منهما:",
        "The counts by source or by flag add up to more than the total: a beneficiary that two "
        "partners report, or who has two flags, is counted once under each.",
    ),
    "match.several_sources": (
        "مستفيدون ذكرتهم أكثر من جهة",
        "beneficiaries reported by more than one partner",
    ),
    "match.several_flags": (
        "مستفيدون لديهم أكثر من مؤشر",
        "beneficiaries with more than one flag",
    ),
    "match.downloads": ("قوائم التحقق الميداني", "Lists for field verification"),
    "match.beneficiary_list": ("قائمة المستفيدين", "Beneficiary list"),
    "match.household_list": ("قائمة الأسر", "Household list"),
    "match.download_note": (
        "كل صف مؤشر يحتاج إلى تحقق ميداني، وليس قراراً. القوائم من سجل الوزارة نفسها.",
        "Each row is an indication for field verification, never a decision. The lists come "
        "from the ministry's own roster.",
    ),
    "match.failed": ("فشلت المطابقة", "The match failed"),
    "match.as_of": ("تاريخ بيانات الجهة", "Partner data as of"),
    # roster
    "roster.title": ("سجل المستفيدين", "Roster"),
    "roster.current": ("السجل الحالي", "Current roster"),
    "roster.register": ("تسجيل أو تحديث السجل", "Register or refresh the roster"),
    "roster.file": ("ملف السجل (CSV بترميز UTF-8)", "Roster extract (UTF-8 CSV)"),
    "roster.file_help": (
        "يُقرأ الملف هنا وتُحسب رموز المستفيدين في المكتب؛ لا يُرسل إلى الوسيط إلا الرموز. "
        "إذا رُفض الملف لا يتغير شيء.",
        "The file is read here and the beneficiaries' tokens computed at the desk; only the "
        "tokens go to the broker. If the file is refused, nothing changes.",
    ),
    "roster.submit": ("تسجيل السجل", "Register the roster"),
    "roster.again": ("إعادة تسجيل الملف الحالي", "Register the current file again"),
    "roster.history": ("عمليات التسجيل", "Registrations"),
    "roster.rows": ("الصفوف", "Rows"),
    "roster.rejected": ("الصفوف المرفوضة", "Rejected rows"),
    "roster.no_file": ("اختر ملفاً.", "Choose a file."),
    # staff
    "staff.title": ("الموظفون", "Staff"),
    "staff.add": ("إضافة موظف", "Add a member of staff"),
    "staff.name": ("الاسم", "Name"),
    "staff.role": ("الدور", "Role"),
    "staff.password": ("كلمة مرور أولية (١٠ أحرف على الأقل)", "First password (10+ characters)"),
    "staff.submit": ("إضافة", "Add"),
    "staff.state": ("الحالة", "State"),
    "staff.active": ("فعّال", "Active"),
    "staff.disabled": ("موقوف", "Disabled"),
    "staff.locked": ("مقفل مؤقتاً", "Locked for now"),
    "staff.disable": ("إيقاف", "Disable"),
    "staff.enable": ("تفعيل", "Enable"),
    "staff.unlock": ("رفع القفل", "Unlock"),
    "staff.last_sign_in": ("آخر دخول", "Last sign-in"),
    "staff.added": ("تمت إضافة الموظف.", "The member of staff was added."),
    "staff.error.invalid_name": (
        "الاسم من ٢ إلى ٦٤ حرفاً.",
        "A name is 2 to 64 characters.",
    ),
    "staff.error.weak_password": (
        "كلمة المرور قصيرة: ١٠ أحرف على الأقل.",
        "The password is too short: at least 10 characters.",
    ),
    "staff.error.user_exists": ("يوجد موظف بهذا الاسم.", "There is already someone by that name."),
    "staff.error.invalid_role": ("دور غير معروف.", "Unknown role."),
    "staff.error.user_not_found": ("لا يوجد موظف بهذا الاسم.", "No one has that name."),
    "staff.error.self": ("لا يمكنك إيقاف حسابك.", "You cannot disable your own account."),
    # log
    "log.title": ("سجل المكتب", "Desk log"),
    "log.when": ("الوقت", "When"),
    "log.who": ("الموظف", "Who"),
    "log.what": ("الإجراء", "What"),
    "log.outcome": ("النتيجة", "Outcome"),
    "log.details": ("التفاصيل", "Details"),
    # audit
    "audit.title": ("وحدة التدقيق", "Auditor's console"),
    "audit.text": (
        "ستعرض هذه الصفحة قيود سجل التدقيق وأثر الوصول إلى كل شخص والتحقق من السجل. "
        "هي قيد الإعداد.",
        "This page will show the audit log's entries, a person's access trail and the log's "
        "verification. It is being prepared.",
    ),
}
