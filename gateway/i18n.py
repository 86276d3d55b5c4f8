"""English and Chinese for the admin page: chosen from Accept-Language, switched by a cookie.

Templates write English and wrap it in `_()`; ZH maps each English text to Chinese. A test
checks that every `_()` text in the templates has its Chinese here.
"""

from __future__ import annotations

from flask import Blueprint, Flask, g, redirect, request

from gateway.domain.lifecycle import LABELS_ZH

LANGS = ("en", "zh")
COOKIE = "bagscan_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

bp = Blueprint("i18n", __name__)

ZH: dict[str, str] = {
    # navigation and frame
    "Dashboard": "总览",
    "Bags": "大包",
    "Handovers": "交接单",
    "Devices": "手持终端",
    "Parcel lookup": "小包查询",
    "Users": "用户",
    "Log out": "退出登录",
    "Log in": "登录",
    "Username": "用户名",
    "Password": "密码",
    "Wrong username or password.": "用户名或密码错误。",
    "Too many failed logins. Try again in an hour.": "登录失败次数过多，请一小时后再试。",
    "Language": "语言",
    "Signed in as": "当前用户",
    # dashboard
    "Today's bags by status": "今日大包状态",
    "Late pickups": "超时未揽收",
    "No late pickups.": "没有超时未揽收的大包。",
    "Due": "截止时间",
    "Late by": "已超时",
    "Devices online": "在线终端",
    "Bags per hour today": "今日每小时大包数",
    "bagged": "已组包",
    "picked up": "已揽收",
    "arrived": "已到达",
    "Recent bags": "最新大包",
    "Live": "实时",
    "Offline": "离线",
    "Online": "在线",
    "Total": "合计",
    "Updated": "更新于",
    # bags
    "Bag number": "大包号",
    "Status": "状态",
    "Parcels": "小包数",
    "Weight (g)": "重量（克）",
    "Device": "终端",
    "Closed": "封包时间",
    "Opened": "开包时间",
    "No bags.": "没有大包。",
    "All statuses": "全部状态",
    "Date": "日期",
    "Late only": "仅超时",
    "Search bag or tracking number": "搜索大包号或运单号",
    "Filter": "筛选",
    "Clear": "清除",
    "Next page": "下一页",
    "First page": "第一页",
    "Export CSV": "导出 CSV",
    "Seller": "商家",
    "All sellers": "全部商家",
    "late": "超时",
    # bag detail
    "Bag": "大包",
    "Weight at bagging (g)": "组包重量（克）",
    "Weight at arrival (g)": "到仓重量（克）",
    "Dimensions (cm)": "尺寸（厘米）",
    "Download label (PDF)": "下载大包面单（PDF）",
    "Tracking number": "运单号",
    "Added": "加入时间",
    "Scan timeline": "扫描记录",
    "Status history": "状态历史",
    "Time": "时间",
    "Event": "事件",
    "From": "原状态",
    "To": "新状态",
    "Cause": "原因",
    "By": "操作人",
    "Pickup due": "揽收截止",
    "not yet": "尚无",
    "No such bag.": "没有这个大包。",
    # parcels
    "Look up": "查询",
    "No parcel with this tracking number.": "没有这个运单号的小包。",
    "Pickup scan": "揽收扫描",
    "Hub receipt": "分拨中心签收",
    "Online time": "上网时间",
    "Reason": "原因",
    "In bag": "所在大包",
    # devices
    "Last seen": "最后在线",
    "Battery (mV)": "电量（毫伏）",
    "Firmware": "固件",
    "Backlog": "待上传",
    "Clock skew (s)": "时钟偏差（秒）",
    "Bag numbers": "大包号段",
    "Provision a device": "添加终端",
    "Device id": "终端编号",
    "Provision": "添加",
    "Device provisioned. Copy the password now: it is shown only once.": "终端已添加。请立即记下密码，它只显示这一次。",
    "No devices.": "没有终端。",
    # handovers and receipts
    "Receipt": "交接单",
    "Print receipt": "打印交接单",
    "Receipt PDF": "交接单 PDF",
    "Pickup date": "揽收日期",
    "Driver": "司机",
    "Driver signature": "司机签名",
    "No handovers.": "没有交接单。",
    "Seller copy": "商家联",
    "Driver copy": "司机联",
    "Audit copy": "稽核联",
    "Handover receipt": "交接单",
    "Receipt verified": "交接单验证通过",
    "This receipt could not be verified.": "这张交接单无法验证。",
    "Handovers are not recorded by this gateway yet.": "本网关尚未记录交接单。",
    # users
    "Role": "角色",
    "Create user": "新建用户",
    "Created": "创建时间",
    # roles
    "admin": "管理员",
    "dispatcher": "调度员",
    "viewer": "只读用户",
}

# Online-time reasons (gateway.domain.online_time) in Chinese.
REASONS_ZH = {
    "PICKUP_SCAN": "上网时间回传为所在大包的揽收扫描时间",
    "NO_BAG_DATA": "无组包数据：上网时间为分拨中心签收时间",
    "BAG_NOT_SCANNED": "所在大包未被揽收扫描：上网时间为签收时间",
    "SCAN_AFTER_RECEIPT": "揽收扫描晚于签收（时钟错误）：上网时间为签收时间",
}


def current_lang() -> str:
    if "lang" not in g:
        chosen = request.cookies.get(COOKIE)
        if chosen not in LANGS:
            chosen = request.accept_languages.best_match(LANGS, default="en")
        g.lang = chosen
    return g.lang


def gettext(text: str) -> str:
    if current_lang() == "zh":
        return ZH.get(text, text)
    return text


def status_label_in(code: str | None, lang: str) -> str:
    if not code:
        return ""
    if lang == "zh":
        return LABELS_ZH.get(code, code)
    return code.replace("_", " ")


def status_label(code: str | None) -> str:
    return status_label_in(code, current_lang())


def _safe_back(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


@bp.post("/lang")
def switch():
    """Remember the chosen language (the form carries its CSRF token like every form)."""
    lang = request.form.get("lang")
    response = redirect(_safe_back(request.form.get("back")))
    if lang in LANGS:
        response.set_cookie(COOKIE, lang, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax")
    return response


def init_app(app: Flask) -> None:
    app.jinja_env.globals["_"] = gettext
    app.jinja_env.globals["current_lang"] = current_lang
    app.jinja_env.globals["status_label"] = status_label
    app.jinja_env.globals["LANGS"] = LANGS
    app.register_blueprint(bp)
